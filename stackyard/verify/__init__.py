"""``stackyard verify``: Tempest against the deployed cloud, configured from the deployment itself.

- :mod:`.tempestconf` (pure): what the cloud is (:class:`~.tempestconf.CloudFacts`)
  -> tempest.conf as data;
- :mod:`.facts`: the facts, read from the deployment and the cloud's APIs
  (catalog, Neutron extensions, microversions, day-1 flavors, images, networks);
- :mod:`.selection` (pure): smoke / full / a regex and an exclude list -> Tempest's arguments;
- :mod:`.summary`: the subunit stream -> counts, failures with their first error
  lines, skips with their reasons;
- :mod:`.runner`: Tempest's virtualenv (a pinned version), the per-run directory, the run.
"""
