"""The few places where Lethe's nodes meet ComfyUI's own modules (imported lazily, so the
pack also imports outside ComfyUI): the progress bar (which raises ComfyUI's interrupt),
the output and model folders, preview images in the temp folder, and ComfyUI's LATENT and
CONDITIONING values (docs/comfyui-contract.md §5) as the tensors native nodes take."""
import hashlib
import os


def resolve_path(value):
    """A relative folder/file path as a ComfyUI user means it: relative to ComfyUI's folder
    (where input/ and output/ live), else to the input folder, else a file name in ComfyUI's
    checkpoints folder(s); unchanged if none exists (the native node then names the path it
    could not find)."""
    if not isinstance(value, str) or not value or os.path.isabs(value) or os.path.exists(value):
        return value
    try:
        import folder_paths
    except ImportError:
        return value
    for base in (getattr(folder_paths, "base_path", None), folder_paths.get_input_directory()):
        if base and os.path.exists(os.path.join(base, value)):
            return os.path.join(base, value)
    try:
        return folder_paths.get_full_path("checkpoints", value) or value
    except (KeyError, AttributeError):
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


def check_filename_prefix(prefix, folder, where):
    """ComfyUI's own check that a filename prefix stays inside the folder it saves into
    (folder_paths.get_save_image_path raises otherwise). Native code checks again, symlinks
    included; a prompt is untrusted input."""
    try:
        import folder_paths
    except ImportError:
        return
    try:
        folder_paths.get_save_image_path(prefix, folder)
    except Exception as error:  # ComfyUI raises a bare Exception here
        raise ValueError(f"{where}: '{prefix}' would save outside the folder '{folder}' ({error})") from None


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


def model_folders():
    """ComfyUI's folders that native nodes write into: LoRAs go where LoraLoader looks, saved models
    under their prefix in the output folder (as SaveImage's images)."""
    try:
        import folder_paths
    except ImportError:
        return {}
    folders = {"output": folder_paths.get_output_directory()}
    try:
        folders["loras"] = folder_paths.get_folder_paths("loras")[0]
    except (KeyError, IndexError):
        pass
    return folders


# What ComfyUI's CONDITIONING entries carry besides their tensor (pooled_output, guidance, width,
# height, ...: what a model's extra_conds turns into its y, guidance, ... inputs), by the SHA-256
# of each context row: native code carries the [L, D] rows only, and the host model
# (nodes/host_model.py) looks their values up again when it calls the MODEL. The latest
# registration of a row wins (a re-run with another guidance replaces the old value); a run's
# identity includes the values it used (conditioning_digest).
_CONDITIONING_VALUES = {}


def tensor_bytes(tensor):
    """A tensor's values as raw bytes (on the CPU, contiguous), for hashing."""
    import torch

    return tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def context_key(row):
    """The key of one context row [L, D] (as float32, the form native nodes keep it in)."""
    import torch

    digest = hashlib.sha256(str(tuple(row.shape)).encode())
    digest.update(tensor_bytes(row.to(torch.float32)))
    return digest.hexdigest()


def conditioning_values(row):
    """The CONDITIONING values registered for a context row [L, D], or None."""
    return _CONDITIONING_VALUES.get(context_key(row))


def _value_digest(value):
    import torch

    if torch.is_tensor(value):
        return f"{value.dtype}{tuple(value.shape)}:" + hashlib.sha256(tensor_bytes(value)).hexdigest()
    if isinstance(value, (bool, int, float, str, type(None))):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_value_digest(item) for item in value) + "]"
    return type(value).__name__  # objects (control nets, hooks) by kind only


def conditioning_digest(rows):
    """SHA-256 of the CONDITIONING values attached to these context rows ('' when none has any)."""
    digest, attached = hashlib.sha256(), False
    for row in rows:
        values = conditioning_values(row)
        if values:
            attached = True
            for key in sorted(values):
                digest.update(f"{key}={_value_digest(values[key])};".encode())
        digest.update(b"|")
    return digest.hexdigest() if attached else ""


# SDXL's size conditioning as CLIPTextEncodeSDXL sets it, in sdxl_vector's order (native/models/sdxl_vector.hpp).
SDXL_SIZE_KEYS = ("height", "width", "crop_h", "crop_w", "target_height", "target_width")


def _pooled_and_sizes(value, where):
    """The entries' pooled outputs [N, P] and SDXL sizes [N, 6] (NaN where an entry gives none; the
    native node completes them from the latent's size as ComfyUI's samplers do), or (None, None)
    when no entry has a pooled output."""
    import torch

    pooled, sizes = [], []
    for entry in value:
        rows = entry[0].shape[0]
        values = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
        vector = values.get("pooled_output")
        if not torch.is_tensor(vector):
            pooled.append(None)
            continue
        vector = vector.reshape(-1, vector.shape[-1]).to(torch.float32)
        if vector.shape[0] != rows:
            if vector.shape[0] != 1:
                raise ValueError(f"{where}: an entry has {rows} prompts but {vector.shape[0]} pooled outputs")
            vector = vector.expand(rows, -1)
        pooled.append(vector)
        given = [float(values[key]) if isinstance(values.get(key), (int, float)) else float("nan") for key in SDXL_SIZE_KEYS]
        sizes.append(torch.tensor([given] * rows, dtype=torch.float64))
    if all(vector is None for vector in pooled):
        return None, None
    if any(vector is None for vector in pooled):
        raise ValueError(f"{where}: some CONDITIONING entries carry a pooled output and some do not; encode every "
                         "prompt with the same CLIPTextEncode of the checkpoint's CLIP")
    if len({vector.shape[1] for vector in pooled}) != 1:
        raise ValueError(f"{where}: CONDITIONING entries with pooled outputs of different widths "
                         f"{sorted({vector.shape[1] for vector in pooled})}; encode every prompt with the same CLIP")
    return torch.cat(pooled), torch.cat(sizes)


def to_native(kind, value, where):
    """A ComfyUI LATENT ({"samples": [B, C, h, w], ...}) or CONDITIONING ([[cond [1, L, D], {...}], ...])
    as native nodes take it: the samples, or {"context": the entries' cond tensors concatenated
    [N, L, D], "pooled": their pooled outputs [N, P] or None, "sizes": SDXL's size values [N, 6] or
    None} (each entry's values also registered for its rows, for the host model)."""
    import torch

    if kind == "LATENT":
        if not isinstance(value, dict) or not torch.is_tensor(value.get("samples")):
            raise ValueError(f"{where}: expected a LATENT (a dict with a 'samples' tensor), got {type(value).__name__}")
        return value["samples"]
    if kind == "CONDITIONING":
        if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(entry, (list, tuple)) and entry and torch.is_tensor(entry[0]) for entry in value
        ):
            raise ValueError(f"{where}: expected a CONDITIONING (a list of [tensor, dict] entries), got {type(value).__name__}")
        tensors = [entry[0] for entry in value]
        shapes = {tuple(t.shape[1:]) for t in tensors}
        if len(shapes) != 1:
            raise ValueError(f"{where}: CONDITIONING entries of different token lengths {sorted(shapes)}; "
                             "encode prompts of similar length (or one prompt per node)")
        for entry in value:
            values = dict(entry[1]) if len(entry) > 1 and isinstance(entry[1], dict) else {}
            for row in entry[0]:
                _CONDITIONING_VALUES[context_key(row)] = values
        pooled, sizes = _pooled_and_sizes(value, where)
        return {"context": torch.cat(tensors, dim=0), "pooled": pooled, "sizes": sizes}
    return value


def from_native(kind, value, host_model=None, where="output"):
    """The inverse of to_native for node outputs. A MODEL output comes back from native code as
    weight patches {"patches": {state-dict key: delta}, "strength": s} for the node's MODEL input:
    applied to a clone of it (the input is never mutated), every key must be accepted with its
    weight's shape."""
    if kind == "MODEL":
        if host_model is None:
            raise ValueError(f"{where}: a MODEL output needs a MODEL input to patch")
        patches = value["patches"]
        # ComfyUI skips a patch whose shape differs from its weight ("SHAPE MISMATCH ... NOT MERGED")
        # with a log line only: refuse here, so a LoRA is applied whole or not at all.
        weights = host_model.model_state_dict()
        wrong = [f"{key} (LoRA {list(delta.shape)}, MODEL {list(weights[key].shape)})" for key, delta in patches.items()
                 if key in weights and tuple(weights[key].shape) != tuple(delta.shape)]
        if wrong:
            raise ValueError(f"{where}: {len(wrong)} of {len(patches)} LoRA weights have another shape than this MODEL's "
                             f"(e.g. {wrong[0]}); apply the LoRA to the checkpoint it was trained on")
        patched = host_model.clone()
        accepted = set(patched.add_patches({key: (delta,) for key, delta in patches.items()}, value["strength"]))
        missing = sorted(set(patches) - accepted)
        if missing:
            raise ValueError(f"{where}: {len(missing)} of {len(patches)} LoRA weights match no weight of this MODEL "
                             f"(e.g. {missing[0]}); apply the LoRA to the checkpoint it was trained on")
        return patched
    if kind == "LATENT":
        return {"samples": value}
    if kind == "CONDITIONING":
        return [[value[i : i + 1], {}] for i in range(value.shape[0])]
    return value
