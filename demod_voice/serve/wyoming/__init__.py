"""The Wyoming front door (Home Assistant): server, per-connection handler, voice list."""
