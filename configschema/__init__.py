"""Configuration files checked against a schema: the pieces the phone and the gateway share.

``values``: the value checks (strings, integers, hosts, URLs, secrets that never show themselves).
``schema``: reading TOML, merging a secrets file, checking sections of frozen dataclasses with every
error at once ("did you mean" for unknown keys), and rendering a config back with secrets masked.
``sections``: sections both configs have (``[log]``). It imports nothing of ours.
"""
