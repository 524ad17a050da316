"""Mock of comfy/model_patcher.py's weight-patch part and get_model_object (ComfyUI @ a125cd84, docs/comfyui-contract.md §5):
clone() shares the module and copies the patch lists; add_patches() accepts the keys that are
in the model's state dict and returns them; patched_weight() merges "diff" patches as
comfy/lora.py:calculate_weight does (weight * strength_model + strength_patch * diff)."""


class ModelPatcher:
    def __init__(self, model, load_device=None, offload_device=None):
        self.model = model
        self.load_device, self.offload_device = load_device, offload_device
        self.patches = {}

    def get_model_object(self, name):
        return getattr(self.model, name)

    def model_state_dict(self):
        return self.model.state_dict()

    def clone(self):
        other = ModelPatcher(self.model, self.load_device, self.offload_device)
        other.patches = {key: list(value) for key, value in self.patches.items()}
        return other

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
        accepted = set()
        state = self.model_state_dict()
        for key in patches:
            offset = function = None
            name = key
            if not isinstance(key, str):
                name, offset = key[0], key[1]
                function = key[2] if len(key) > 2 else None
            if name in state:
                accepted.add(key)
                self.patches.setdefault(name, []).append((strength_patch, patches[key], strength_model, offset, function))
        return list(accepted)

    def patched_weight(self, key):
        weight = self.model_state_dict()[key].float().clone()
        for strength_patch, patch, strength_model, _, _ in self.patches.get(key, []):
            diff = patch[1][0] if len(patch) == 2 and patch[0] == "diff" else patch[0]
            weight = weight * strength_model + strength_patch * diff.float()
        return weight
