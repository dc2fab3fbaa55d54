"""Voice conversion: OpenVoice v2's converter (request side and worker side)."""
