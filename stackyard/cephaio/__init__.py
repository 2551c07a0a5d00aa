"""ceph-aio: a one-node test Ceph cluster, laid out as kolla-ansible's external Ceph.

Test and demo infrastructure only (the all-in-one and the e2e tests): a
production cloud uses an existing Ceph (cephadm, Rook), as kolla-ansible's
users do, and puts its files in the same places.

What :func:`up` makes, for one config dir (default ``/etc/kolla``):

* three containers on host networking, from the images ``ceph-mon``,
  ``ceph-mgr`` and ``ceph-osd`` of our tree (``<name_prefix>ceph_aio_mon``,
  ``_mgr``, ``_osd``): a monitor on 127.0.0.1 (msgr v2 port 3300, v1 6789),
  a manager and one OSD keeping BlueStore in a 10 GiB sparse file; data in
  the named volumes ``<name_prefix>ceph_aio_mon`` and ``_osd``. Everything
  carries the label ``org.stackyard.ceph-aio=<configdir>``;
* the pools and users of kolla-ansible's ``ceph_*`` options read from the
  config dir's globals.yml (kolla's defaults when not set): pools
  ``images``, ``volumes``, ``vms``, ``backups`` (``rbd pool init``-ed, one
  copy each); users ``client.glance``, ``client.cinder`` (also Nova's,
  ``ceph_nova_user`` defaulting to the Cinder user) and
  ``client.cinder-backup`` with the RBD profiles of Ceph's OpenStack guide;
* kolla-ansible's external Ceph files under ``<configdir>/config/`` (0600),
  ``<c>`` being ``ceph_cluster`` (``ceph``)::

      glance/<c>.conf                  glance/<c>.client.<glance user>.keyring
      cinder/<c>.conf                  cinder/cinder-volume/<c>.client.<cinder user>.keyring
                                       cinder/cinder-backup/<c>.client.<cinder user>.keyring
                                       cinder/cinder-backup/<c>.client.<backup user>.keyring
      nova/<c>.conf                    nova/<c>.client.<nova user>.keyring
                                       nova/<c>.client.<cinder user>.keyring

  The ``ceph.conf`` holds ``fsid``, ``mon_host`` (both ports on 127.0.0.1)
  and the cephx settings; a keyring holds ``[client.<user>]`` and its key.
* ``<configdir>/ceph-aio/``: the daemons' config dirs and ``state.json``
  (fsid, keys, settings; 0600).

API (all take the config dir; an engine is connected when none is given):

``up(configdir, namespace=None, name_prefix=None, *, extra_vars=None,
engine=None, timeout=180, say=..., mon_port=3300, mon_v1_port=6789,
osd_block_size=10 GiB) -> UpResult``
    Make the cluster, or converge an existing one (a second call on a ready
    cluster changes nothing: ``result.nothing_changed``), and return once the
    monitor is in quorum, the manager available, the OSD up and in and every
    PG active+clean. ``namespace`` and ``name_prefix`` default to globals.yml's
    ``docker_namespace`` and ``stackyard_name_prefix``; ``extra_vars``
    override globals.yml like ``-e``. ``UpResult`` has ``fsid``, ``files``
    (the client files), ``options`` (:class:`CephOptions`: pools and users),
    ``settings``, ``changed``, ``seconds``, ``health``. Errors are
    :class:`~stackyard.errors.StackyardError`: a missing image, a port in use,
    a daemon that stopped or a timeout (with the daemon's last log lines).
``down(configdir, *, include_volumes=False, engine=None) -> DownResult``
    Remove the containers. ``include_volumes`` also removes the data, the
    state and the client files ceph-aio wrote (a file edited since is kept).
``status(configdir, *, engine=None) -> StatusResult``
    Containers, volumes, Ceph's health and readiness, client files.
``resolve(configdir, namespace=None, name_prefix=None, ...)``
    The :class:`Settings` and :class:`CephOptions` ``up`` would use, without
    doing anything (``images(settings)`` lists the image references).
"""

from __future__ import annotations

from stackyard.cephaio.plan import BACKEND_LINES, IMAGES, CephOptions, Settings, client_file_layout
from stackyard.cephaio.run import DownResult, StatusResult, UpResult, down, images, missing_images, resolve, status, up

__all__ = [
    "BACKEND_LINES", "IMAGES", "CephOptions", "Settings", "client_file_layout", "DownResult", "StatusResult",
    "UpResult", "down", "images", "missing_images", "resolve", "status", "up",
]
