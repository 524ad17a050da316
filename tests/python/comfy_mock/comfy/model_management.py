"""Mock of the interrupt part of comfy/model_management.py (ComfyUI @ a125cd84)."""
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


def load_models_gpu(models, memory_required=0, force_full_load=False, minimum_memory_required=None, force_patch_weights=False):
    """CPU only: the weights already are where they compute."""
    return None
