"""The few places where Lethe's nodes meet ComfyUI's own modules (imported lazily, so the
pack also imports outside ComfyUI): the progress bar (which raises ComfyUI's interrupt),
the output folder, and preview images in the temp folder."""
import os


def resolve_path(value):
    """A relative folder/file path as a ComfyUI user means it: relative to ComfyUI's folder
    (where input/ and output/ live), else to the input folder; unchanged if neither exists
    (the native node then names the path it could not find)."""
    if not isinstance(value, str) or not value or os.path.isabs(value) or os.path.exists(value):
        return value
    try:
        import folder_paths
    except ImportError:
        return value
    for base in (getattr(folder_paths, "base_path", None), folder_paths.get_input_directory()):
        if base and os.path.exists(os.path.join(base, value)):
            return os.path.join(base, value)
    return value


def output_directory():
    """ComfyUI's output folder + /lethe (runs, saved models, reports)."""
    try:
        import folder_paths

        base = folder_paths.get_output_directory()
    except ImportError:
        base = os.path.join(os.getcwd(), "out")
    path = os.path.join(base, "lethe")
    os.makedirs(path, exist_ok=True)
    return path


class ProgressReporter:
    """Called by native code once per step: drives ComfyUI's progress bar and checks Cancel."""

    def __init__(self, node_id):
        self.node_id = node_id
        self.bar = None
        self.stage = None

    def __call__(self, event):
        try:
            import comfy.model_management
            import comfy.utils
        except ImportError:
            return
        if self.bar is None or event["stage"] != self.stage:
            self.bar = comfy.utils.ProgressBar(max(1, event["total"]), node_id=self.node_id)
            self.stage = event["stage"]
        self.bar.update_absolute(event["step"], event["total"])
        comfy.model_management.throw_exception_if_processing_interrupted()


def save_previews(previews):
    """Writes [B, H, W, C] preview tensors as PNGs in ComfyUI's temp folder (like PreviewImage)."""
    if not previews:
        return []
    try:
        import folder_paths
    except ImportError:
        return []
    import numpy as np
    from PIL import Image

    results = []
    temp = folder_paths.get_temp_directory()
    for label, images in previews:
        height, width = int(images.shape[1]), int(images.shape[2])
        full, filename, counter, subfolder, _ = folder_paths.get_save_image_path(f"lethe_{label}_temp", temp, width, height)
        for image in images:
            array = (image.cpu().numpy() * 255.0).clip(0, 255).astype(np.uint8)
            name = f"{filename}_{counter:05}_.png"
            Image.fromarray(array).save(os.path.join(full, name))
            results.append({"filename": name, "subfolder": subfolder, "type": "temp"})
            counter += 1
    return results
