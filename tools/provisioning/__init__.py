"""Provisioning of desk phones: device descriptions, boot-partition writing, broker credentials.

``tools/flash.py`` is the command-line face; the modules here hold the logic:

- ``device``: one phone's settings, rendered to the config and secrets TOML files and validated
  through ``firmware.config``.
- ``inventory``: the office CSV and the secrets store shared by ``bulk`` and ``broker``.
- ``image``: partition tables, base-image copying (``.img``/``.img.xz``), block-device safety.
- ``fat``: reading and writing the FAT boot partition with mtools.
- ``bundle``: the firmware bundle (wheel + wheelhouse) and its SHA256SUMS.
- ``firstboot``: the first-boot unit and script, and how the image's OS is told to run them.
- ``broker``: mosquitto password file (PBKDF2-SHA512 ``$7$``) and per-device ACL.
- ``provision`` / ``verify``: writing a target and reading it back.
"""
