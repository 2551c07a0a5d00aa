"""tempest.conf follows from what the cloud is: each fact moves exactly the options it should."""

from dataclasses import replace

from stackyard.deploy.merge import parse_ini
from stackyard.verify.tempestconf import CloudFacts, render, tempest_conf

FACTS = CloudFacts(
    auth_url="http://127.0.0.1:5000/v3", region="RegionOne", admin_user="admin", admin_password="s3cret",
    admin_project="admin", services=frozenset({"identity", "compute", "image", "network", "placement"}),
    image_id="img", image_alt_id="img", flavor_id="f1", flavor_alt_id="f2", public_network_id="pub",
    public_network_name="public1", network_extensions=("router", "port-security", "external-net"),
    compute_max_microversion="2.100", compute_hosts=1, vnc_console=True, image_file="/g/disk.img",
    image_properties={"kernel_id": "k", "ramdisk_id": "r"}, run_dir="/runs/1",
)


def test_services_follow_the_catalog() -> None:
    conf = tempest_conf(FACTS)
    assert conf["service_available"] == {"nova": True, "glance": True, "neutron": True, "cinder": False,
                                         "heat": False, "swift": False, "horizon": False}
    with_volume = tempest_conf(replace(FACTS, services=FACTS.services | {"volumev3", "orchestration"}))
    assert with_volume["service_available"]["cinder"] and with_volume["service_available"]["heat"]
    # no such option in [compute-feature-enabled]: [service_available] cinder is what tests look at
    assert "cinder" not in with_volume["compute-feature-enabled"]
    no_net = tempest_conf(replace(FACTS, services=frozenset({"identity", "compute", "image"})))
    assert "network" not in no_net and no_net["validation"]["run_validation"] is False
    assert no_net["auth"]["create_isolated_networks"] is False


def test_one_compute_host_has_no_migration_but_resizes_to_itself() -> None:
    one = tempest_conf(FACTS)["compute-feature-enabled"]
    assert one["resize"] is True and one["live_migration"] is False and one["cold_migration"] is False
    two = tempest_conf(replace(FACTS, compute_hosts=2))
    assert two["compute-feature-enabled"]["live_migration"] is True and two["compute"]["min_compute_nodes"] == 2


def test_network_features_from_the_loaded_extensions() -> None:
    net = tempest_conf(FACTS)["network-feature-enabled"]
    assert net["api_extensions"] == "external-net,port-security,router"
    assert net["port_security"] is True and net["floating_ips"] is True
    bare = tempest_conf(replace(FACTS, network_extensions=("external-net",)))["network-feature-enabled"]
    assert bare["port_security"] is False and bare["floating_ips"] is False


def test_guest_and_scenario_settings() -> None:
    conf = tempest_conf(FACTS)
    assert conf["validation"]["image_ssh_user"] == "root" and conf["validation"]["connect_method"] == "floating"
    assert conf["scenario"]["img_properties"] == "kernel_id:k,ramdisk_id:r"
    assert conf["scenario"]["img_disk_format"] == "ami" and conf["scenario"]["dhcp_client"] == "udhcpc"
    assert conf["compute"]["max_microversion"] == "2.100"
    assert conf["compute-feature-enabled"]["serial_console"] is False  # no serial proxy is deployed
    assert conf["compute-feature-enabled"]["vnc_console"] is True
    assert conf["identity"]["ca_certificates_file"] is None  # plain http: not written at all


def test_rendered_file_parses_and_skips_unset_values() -> None:
    text = render(FACTS)
    data = parse_ini(text)
    assert data["identity"]["uri_v3"] == ["http://127.0.0.1:5000/v3"]
    assert "ca_certificates_file" not in data["identity"]
    assert data["network"]["public_network_id"] == ["pub"]
    assert data["oslo_concurrency"]["lock_path"] == ["/runs/1/locks"]
    assert "dashboard" not in data  # Horizon not deployed
    with_horizon = parse_ini(render(replace(FACTS, services=FACTS.services | {"dashboard"},
                                            dashboard_url="http://127.0.0.1")))
    assert with_horizon["dashboard"]["dashboard_url"] == ["http://127.0.0.1/"]


def test_volume_sections_only_with_cinder_in_the_catalog() -> None:
    conf = tempest_conf(FACTS)
    assert "volume" not in conf and "volume-feature-enabled" not in conf
    cinder = replace(FACTS, services=FACTS.services | {"block-storage", "volumev3"},
                     volume_max_microversion="3.70", volume_backup=True)
    conf = tempest_conf(cinder)
    vol = conf["volume"]
    assert vol["catalog_type"] == "block-storage" and vol["endpoint_type"] == "internal"
    assert (vol["min_microversion"], vol["max_microversion"]) == ("3.0", "3.70")
    # what the RBD driver reports: volume types Tempest makes match the one backend
    assert (vol["storage_protocol"], vol["vendor_name"], vol["backup_driver"]) == ("ceph", "Open Source", "ceph")
    feat = conf["volume-feature-enabled"]
    assert feat["backup"] is True and feat["snapshot"] is True and feat["clone"] is True
    assert feat["multi_backend"] is False and feat["manage_volume"] is False
    assert conf["compute-feature-enabled"]["attach_encrypted_volume"] is False
    assert conf["compute-feature-enabled"]["volume_multiattach"] is False
    no_backup = tempest_conf(replace(cinder, volume_backup=False))
    assert no_backup["volume-feature-enabled"]["backup"] is False
    old_facts = replace(FACTS, services=FACTS.services | {"volumev3"})
    old = tempest_conf(old_facts)
    assert old["volume"]["catalog_type"] == "volumev3" and old["volume"]["max_microversion"] is None
    assert "max_microversion" not in parse_ini(render(old_facts))["volume"]


def test_version_documents_of_either_shape() -> None:
    from stackyard.verify.facts import version_max

    assert version_max({"version": {"id": "v2.1", "version": "2.96"}}) == "2.96"
    assert version_max({"versions": [{"id": "v3.0", "status": "CURRENT", "version": "3.70"}]}) == "3.70"
    assert version_max({"versions": [{"id": "v2.0", "status": "DEPRECATED", "version": ""}]}) == ""
    assert version_max({}) == ""
