"""Stand-in for ``comfy.model_management``: devices, the loaded-model list and interruption, with ComfyUI's
names, signatures and semantics (a model is loaded by ``load_models_gpu``, stays in ``current_loaded_models``
until unloaded, and ``throw_exception_if_processing_interrupted`` clears the flag as it raises)."""

from __future__ import annotations

import threading
import weakref
from enum import Enum
from types import SimpleNamespace

import torch


class VRAMState(Enum):
    DISABLED = 0
    NO_VRAM = 1
    LOW_VRAM = 2
    NORMAL_VRAM = 3
    HIGH_VRAM = 4
    SHARED = 5


class CPUState(Enum):
    GPU = 0
    CPU = 1
    MPS = 2


args = SimpleNamespace(gpu_only=False, force_fp32=False, force_fp16=False)
cpu_state = CPUState.GPU if torch.cuda.is_available() else CPUState.CPU
vram_state = VRAMState.NORMAL_VRAM if cpu_state == CPUState.GPU else VRAMState.DISABLED

OOM_EXCEPTION = torch.cuda.OutOfMemoryError


def get_torch_device():
    if cpu_state == CPUState.CPU:
        return torch.device("cpu")
    return torch.device(torch.cuda.current_device())


def is_device_cpu(device):
    return getattr(device, "type", device) == "cpu"


def intermediate_device():
    if args.gpu_only:
        return get_torch_device()
    return torch.device("cpu")


def unet_offload_device():
    if vram_state == VRAMState.HIGH_VRAM:
        return get_torch_device()
    return torch.device("cpu")


def should_use_fp16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    if device is not None and is_device_cpu(device):
        return False
    if args.force_fp16:
        return True
    if args.force_fp32 or cpu_state == CPUState.CPU:
        return False
    return torch.cuda.get_device_properties(device).major >= 7


def should_use_bf16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    if device is not None and is_device_cpu(device):
        return False
    if cpu_state == CPUState.CPU:
        return False
    return torch.cuda.get_device_properties(device).major >= 8


def module_size(module):
    return sum(t.nelement() * t.element_size() for t in module.state_dict().values())


class LoadedModel:
    def __init__(self, model):
        self._model = weakref.ref(model)
        self.device = model.load_device
        self.currently_used = True

    @property
    def model(self):
        return self._model()

    def model_memory(self):
        return self.model.model_size()

    def model_loaded_memory(self):
        return self.model.loaded_size()

    def model_load(self, lowvram_model_memory=0, force_patch_weights=False):
        self.model.partially_load(self.device, 1e32 if lowvram_model_memory == 0 else lowvram_model_memory)
        return self.model.model

    def model_unload(self, memory_to_free=None, unpatch_weights=True):
        self.model.detach(unpatch_weights)
        return True

    def __eq__(self, other):
        return self.model is other.model


current_loaded_models: list[LoadedModel] = []


def load_models_gpu(
    models, memory_required=0, force_patch_weights=False, minimum_memory_required=None, force_full_load=False
):
    models_to_load = []
    for patcher in dict.fromkeys(models):
        loaded = LoadedModel(patcher)
        if loaded in current_loaded_models:
            loaded = current_loaded_models[current_loaded_models.index(loaded)]
            loaded.currently_used = True
        models_to_load.append(loaded)
    for loaded in models_to_load:
        for i in reversed(range(len(current_loaded_models))):
            if loaded.model.is_clone(current_loaded_models[i].model):
                current_loaded_models.pop(i).model.detach(unpatch_all=False)
    for loaded in models_to_load:
        loaded.model_load(0, force_patch_weights=force_patch_weights)
        current_loaded_models.insert(0, loaded)


def load_model_gpu(model):
    return load_models_gpu([model])


def loaded_models(only_currently_used=False):
    return [m.model for m in current_loaded_models if m.currently_used or not only_currently_used]


def free_memory(memory_required, device, keep_loaded=()):
    unloaded = []
    for i in reversed(range(len(current_loaded_models))):
        loaded = current_loaded_models[i]
        if loaded.device == device and loaded not in keep_loaded and loaded.model_unload():
            unloaded.append(current_loaded_models.pop(i))
    soft_empty_cache()
    return unloaded


def unload_all_models():
    free_memory(1e30, get_torch_device())


def soft_empty_cache(force=False):
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class InterruptProcessingException(Exception):
    pass


interrupt_processing_mutex = threading.RLock()
interrupt_processing = False


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
