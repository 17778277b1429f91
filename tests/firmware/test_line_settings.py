"""Forwarding and DND as the CRM set them survive a restart, until the config's own values change."""

import json
import os
import stat

from firmware.line_settings import FILE_NAME, Forwarding, LineSettings, LineSettingsStore

FROM_CONFIG = LineSettings(dnd=False, forwarding=Forwarding(busy="1003"))
BY_CRM = LineSettings(dnd=True, forwarding=Forwarding(always="0170123456", no_answer_s=10))


def test_without_a_file_the_config_applies(tmp_path):
    assert LineSettingsStore(tmp_path, FROM_CONFIG).load() == FROM_CONFIG


def test_the_crm_setting_survives_a_restart_in_a_private_file(tmp_path):
    LineSettingsStore(tmp_path, FROM_CONFIG).save(BY_CRM)
    assert stat.S_IMODE(os.stat(tmp_path / FILE_NAME).st_mode) == 0o600
    assert LineSettingsStore(tmp_path, FROM_CONFIG).load() == BY_CRM


def test_a_changed_config_wins_over_the_crm_setting_and_drops_the_file(tmp_path):
    LineSettingsStore(tmp_path, FROM_CONFIG).save(BY_CRM)
    reprovisioned = LineSettings(dnd=False, forwarding=Forwarding(busy="1004"))
    assert LineSettingsStore(tmp_path, reprovisioned).load() == reprovisioned
    assert not (tmp_path / FILE_NAME).exists()


def test_a_damaged_file_falls_back_to_the_config(tmp_path):
    path = tmp_path / FILE_NAME
    for text in ("{not json", json.dumps({"v": 1, "config": FROM_CONFIG.as_dict(), "settings": {"dnd": 1}}),
                 json.dumps([1, 2])):  # fmt: skip
        path.write_text(text)
        assert LineSettingsStore(tmp_path, FROM_CONFIG).load() == FROM_CONFIG
