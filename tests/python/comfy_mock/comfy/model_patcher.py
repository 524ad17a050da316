"""Mock of comfy/model_patcher.py's weight-patch part and get_model_object (ComfyUI @ a125cd84,
docs/comfyui-contract.md §5): clone() shares the module (and the weight backup) and copies the
patch lists; add_patches() accepts the keys that are in the model's state dict, returns them and
gives the patcher a new patches_uuid; patch_model() (via load()) merges the patches into the
module's weights in place with comfy/lora.py:calculate_weight, keeping the originals in backup;
unpatch_model() puts them back; partially_load() (what load_models_gpu calls) restores weights
patched for another clone before patching. patched_weight(key) is the mock's own read-only view
(get_key_patches' base weight + calculate_weight), for tests."""
import collections
import uuid

import comfy.lora
import comfy.utils

WeightBackup = collections.namedtuple("Dimension", ["weight", "inplace_update"])  # the real name


def get_key_weight(model, key):
    """comfy/model_patcher.py:get_key_weight without comfy.ops' set_/convert_ functions."""
    return comfy.utils.get_attr(model, key), None, None


class ModelPatcher:
    def __init__(self, model, load_device=None, offload_device=None, size=0, weight_inplace_update=False):
        self.model = model
        self.load_device, self.offload_device = load_device, offload_device
        self.size = size
        self.weight_inplace_update = weight_inplace_update
        self.patches = {}
        self.backup = {}
        self.patches_uuid = uuid.uuid4()
        self.parent = None

    def get_model_object(self, name):
        return getattr(self.model, name)

    def model_state_dict(self):
        return self.model.state_dict()

    def clone(self):
        n = ModelPatcher(self.model, self.load_device, self.offload_device, self.size, self.weight_inplace_update)
        n.patches = {key: value[:] for key, value in self.patches.items()}
        n.patches_uuid = self.patches_uuid
        n.backup = self.backup
        n.parent = self
        return n

    def is_clone(self, other):
        return hasattr(other, "model") and self.model is other.model

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
        p = set()
        model_sd = self.model.state_dict()
        for k in patches:
            offset = None
            function = None
            if isinstance(k, str):
                key = k
            else:
                offset = k[1]
                key = k[0]
                if len(k) > 2:
                    function = k[2]
            if key in model_sd:
                p.add(k)
                current_patches = self.patches.get(key, [])
                current_patches.append((strength_patch, patches[k], strength_model, offset, function))
                self.patches[key] = current_patches
        self.patches_uuid = uuid.uuid4()
        return list(p)

    def patch_weight_to_device(self, key, device_to=None, inplace_update=False):
        if key not in self.patches:
            return
        weight, set_func, convert_func = get_key_weight(self.model, key)
        inplace_update = self.weight_inplace_update or inplace_update
        if key not in self.backup:
            self.backup[key] = WeightBackup(weight.to(device=self.offload_device, copy=inplace_update), inplace_update)
        temp_weight = weight.to(device_to, copy=True).float() if device_to is not None else weight.float().clone()
        out_weight = comfy.lora.calculate_weight(self.patches[key], temp_weight, key)
        out_weight = out_weight.to(weight.dtype)  # comfy.float.stochastic_rounding is a cast for float32/16/bf16
        if inplace_update:
            comfy.utils.copy_to_param(self.model, key, out_weight)
        else:
            comfy.utils.set_attr_param(self.model, key, out_weight)

    def load(self, device_to=None, lowvram_model_memory=0, force_patch_weights=False, full_load=False):
        """The full-load branch: every module's parameters patched (patch_weight_to_device skips
        keys without patches), then the model marked as carrying this patcher's patches."""
        for name, _ in self.model.named_parameters():
            self.patch_weight_to_device(name, device_to=device_to)
        self.model.current_weight_patches_uuid = self.patches_uuid

    def patch_model(self, device_to=None, lowvram_model_memory=0, load_weights=True, force_patch_weights=False):
        if load_weights:
            self.load(device_to, lowvram_model_memory=lowvram_model_memory, force_patch_weights=force_patch_weights, full_load=True)
        return self.model

    def unpatch_model(self, device_to=None, unpatch_weights=True):
        if unpatch_weights:
            for k in list(self.backup.keys()):
                bk = self.backup[k]
                if bk.inplace_update:
                    comfy.utils.copy_to_param(self.model, k, bk.weight)
                else:
                    comfy.utils.set_attr_param(self.model, k, bk.weight)
            self.model.current_weight_patches_uuid = None
            self.backup.clear()

    def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
        current = getattr(self.model, "current_weight_patches_uuid", None)
        unpatch_weights = current is not None and (current != self.patches_uuid or force_patch_weights)
        self.unpatch_model(self.offload_device, unpatch_weights=unpatch_weights)
        self.patch_model(load_weights=False)
        if getattr(self.model, "current_weight_patches_uuid", None) is not None:
            return 0  # already loaded with these patches (model_loaded_weight_memory > 0)
        self.load(device_to, force_patch_weights=force_patch_weights, full_load=True)
        return 0

    def detach(self, unpatch_all=True):
        if unpatch_all:
            self.unpatch_model(self.offload_device, unpatch_weights=unpatch_all)
        return self.model

    def patched_weight(self, key):
        bk = self.backup.get(key)
        weight = bk.weight if bk is not None else self.model_state_dict()[key]
        return comfy.lora.calculate_weight(self.patches.get(key, []), weight.float().clone(), key)
