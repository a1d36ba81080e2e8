"""Built-in scenario presets, one TOML file each (package data)."""
