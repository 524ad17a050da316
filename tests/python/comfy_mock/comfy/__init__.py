"""Mock of ComfyUI's `comfy` package (see ../README.md)."""
