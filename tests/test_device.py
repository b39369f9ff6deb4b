"""One reading of --device for the model and the index (inference_server/device.py)."""
import pytest
import torch

from inference_server import device, retriever
from inference_server.errors import ModelError
from inference_server.index import store


def test_model_and_index_resolve_the_device_with_one_function():
    assert retriever.resolve_device is device.resolve_device and store.resolve_device is device.resolve_device


def test_auto_cpu_and_an_unavailable_cuda():
    assert device.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert device.resolve_device("cpu") == device.resolve_device(torch.device("cpu")) == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            device.resolve_device("cuda:0")


def test_precision_decides_bf16_autocast():
    cpu = torch.device("cpu")
    assert not device.autocast_enabled("fp32", cpu) and not device.autocast_enabled("auto", cpu)
    assert device.autocast_enabled("auto", torch.device("cuda")) and not device.autocast_enabled("fp32", torch.device("cuda"))
    with pytest.raises(ModelError, match="unknown precision 'fp16'"):
        device.autocast_enabled("fp16", cpu)
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert device.autocast_enabled("bf16", cpu)
    else:
        with pytest.raises(ModelError, match="no native bf16"):
            device.autocast_enabled("bf16", cpu)
