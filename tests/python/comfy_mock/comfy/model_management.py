"""Mock of comfy/model_management.py (ComfyUI @ a125cd84): the interrupt flag and
load_models_gpu with its list of loaded models, on a CPU-only machine (VRAMState.DISABLED, so
every model loads fully and weight patches are merged into the weights)."""
import threading

import torch

interrupt_processing_mutex = threading.RLock()
interrupt_processing = False


class InterruptProcessingException(Exception):
    pass


def interrupt_current_processing(value=True):
    global interrupt_processing
    with interrupt_processing_mutex:
        interrupt_processing = value


def processing_interrupted():
    with interrupt_processing_mutex:
        return interrupt_processing


def throw_exception_if_processing_interrupted():
    global interrupt_processing
    with interrupt_processing_mutex:
        if interrupt_processing:
            interrupt_processing = False
            raise InterruptProcessingException()


def get_torch_device():
    return torch.device("cpu")


def intermediate_device():
    return torch.device("cpu")


current_loaded_models = []  # the loaded ModelPatchers, newest first (LoadedModel.model)


def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None, force_full_load=False):
    """comfy/model_management.py:load_models_gpu: a loaded clone of a requested model (one sharing
    its module, itself included) is detached without unpatching; each model is then loaded
    (LoadedModel.model_load → ModelPatcher.partially_load), which restores weights patched for
    another clone and merges this one's patches, and goes first in current_loaded_models."""
    models_to_load = []
    for x in models:  # models = set(models)
        if not any(x is m for m in models_to_load):
            models_to_load.append(x)
    for model in models_to_load:
        to_unload = [i for i, loaded in enumerate(current_loaded_models) if model.is_clone(loaded)]
        for i in reversed(to_unload):
            current_loaded_models.pop(i).detach(unpatch_all=False)
    for model in models_to_load:
        model.partially_load(model.load_device, 1e32, force_patch_weights=force_patch_weights)  # model_load: use_more_vram = 1e32
        current_loaded_models.insert(0, model)
