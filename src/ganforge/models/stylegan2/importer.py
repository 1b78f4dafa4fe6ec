"""Read official stylegan2-ada-pytorch network pickles without running any code from them.

An official ``.pkl`` is a plain pickle of ``{'G': ..., 'D': ..., 'G_ema': ..., ...}`` whose networks are
``torch_utils.persistence`` objects: each one pickles as a call to ``_reconstruct_persistent_obj(meta)``
where ``meta`` holds the class name, the *source code of its module* (which the official loader
executes) and the object's ``__dict__`` (parameters, buffers, child modules, constructor arguments).

A normal ``pickle.load`` of such a file runs that source and can run anything else the file asks for.
``RestrictedUnpickler`` instead resolves only an allow-list of names, each to a harmless stand-in:
persistent objects become inert ``PersistentObject`` records (the source is kept as a string, never
run), tensors are rebuilt from raw storage bytes with ``torch.load(weights_only=True)`` (a pickle hidden in
those bytes is refused too, by ganforge.storage.torchload), and every
other global (``os.system``, ``builtins.eval``, ``copyreg._reconstructor``, ...) raises
``UnsafePickleError``. ``import_networks`` then builds ganforge's networks from the recorded constructor
arguments and loads the recorded weights by their official names.
"""
from __future__ import annotations

import codecs
import inspect
import io
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import torch.nn as nn

from ganforge.errors import GanforgeError
from ganforge.models.stylegan2.networks import Discriminator, Generator
from ganforge.models.stylegan2.state import load_official_state
from ganforge.storage.torchload import RefusedPickleError, load_tensors


class UnsafePickleError(RefusedPickleError):
    """The pickle asks for something outside the allow-list (code, or a class we do not know)."""


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a dict with attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class PersistentObject:
    """An official persistent object, captured as data: its class name, module source (never run), state."""

    class_name: str
    module_src: str
    version: int
    state: dict

    @property
    def init_args(self) -> tuple:
        return tuple(_plain(self.state.get("_init_args", ())))

    @property
    def init_kwargs(self) -> dict:
        return _plain(self.state.get("_init_kwargs", {}))

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers under their ``nn.Module.state_dict`` names."""
        out: dict[str, torch.Tensor] = {}
        skip = self.state.get("_non_persistent_buffers_set") or set()
        for kind in ("_parameters", "_buffers"):
            for name, value in (self.state.get(kind) or {}).items():
                if value is not None and not (kind == "_buffers" and name in skip):
                    out[prefix + name] = value.detach() if isinstance(value, torch.Tensor) else value
        for name, child in (self.state.get("_modules") or {}).items():
            if isinstance(child, PersistentObject):
                out.update(child.state_dict(f"{prefix}{name}."))
        return out

    def __repr__(self) -> str:
        return f"PersistentObject({self.class_name}, {len(self.state_dict())} tensors)"


def _plain(value: Any) -> Any:
    """EasyDicts and numpy scalars inside constructor arguments -> plain Python values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


# ----------------------------------------------------------------- the allow-list's stand-ins
def _reconstruct_persistent_obj(meta: dict) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise UnsafePickleError("malformed persistent object in the pickle (expected type 'class' with a state)")
    return PersistentObject(str(meta.get("class_name")), str(meta.get("module_src", "")), meta.get("version", -1),
                            dict(meta["state"]))


def _load_storage(data: bytes):
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("tensor storage is not raw bytes")
    return load_tensors(io.BytesIO(data), "the file holds a pickle inside a tensor's data", UnsafePickleError)


def _is_storage(obj) -> bool:
    return isinstance(obj, (torch.storage.TypedStorage, torch.UntypedStorage))


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if not _is_storage(storage) or not all(isinstance(v, int) for v in (offset, *size, *stride)):
        raise UnsafePickleError("malformed tensor in the pickle")
    return torch._utils._rebuild_tensor_v2(storage, offset, tuple(size), tuple(stride), False, OrderedDict())


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("malformed parameter in the pickle")
    return nn.Parameter(data, requires_grad=bool(requires_grad))  # hooks and extra state are dropped


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("only numeric numpy scalars are allowed")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_dtype(*args):
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise UnsafePickleError("numpy object dtypes are not allowed")
    return dtype


def _latin1_bytes(text, encoding="latin1"):  # how protocol-2 pickles spell bytes
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("unexpected use of _codecs.encode")
    return codecs.encode(text, "latin1")


ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("_codecs", "encode"): _latin1_bytes,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the names in ``ALLOWED`` (to stand-ins) and refuses all others."""

    def find_class(self, module: str, name: str):
        if module == "__builtin__":  # protocol-2 pickles use the Python 2 name
            module = "builtins"
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to load '{module}.{name}' from the pickle: only the names needed "
                                    "for network weights and settings are allowed (it could run code)") from None

    def persistent_load(self, pid):
        raise UnsafePickleError("refusing a persistent id in the pickle: official network pickles have none")


class ForeignFileError(GanforgeError, ValueError):
    """The file is a known kind of network file, but not one this importer reads."""


def _check_not_zip(f: BinaryIO) -> None:
    start = f.tell()
    head = f.read(4)
    f.seek(start)
    if head == b"PK\x03\x04":
        raise ForeignFileError("it is a zip archive, as torch.save writes, not a network pickle: pass the .pkl that "
                               "stylegan2-ada-pytorch (or stylegan3) saves")


def _load(f: BinaryIO) -> Any:
    _check_not_zip(f)
    try:
        return RestrictedUnpickler(f).load()
    except UnsafePickleError as e:
        if "'dnnlib.tflib" in str(e):  # the TensorFlow repositories' networks pickle as dnnlib.tflib objects
            raise ForeignFileError("it is a TensorFlow StyleGAN pickle (dnnlib.tflib), which holds code to run: "
                                   "convert it with stylegan2-ada-pytorch's legacy.py first, then import the "
                                   "PyTorch .pkl") from None
        raise


def load_pickle(source: str | Path | BinaryIO) -> Any:
    """Unpickle ``source`` (a path or binary file) with the restricted unpickler."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as f:
            return _load(f)
    return _load(source)


NETWORK_CLASSES = {"Generator": Generator, "Discriminator": Discriminator}


# The stylegan3 repository's StyleGAN2 Generator takes the synthesis arguments flat (``**synthesis_kwargs``)
# plus ``fused_modconv_default``; ours decides fusing by train/eval mode, as its 'inference_only' does.
DROPPED_KWARGS = ("fused_modconv_default",)
# Arguments only the stylegan3 repository's alias-free generators (configs T and R) take.
STYLEGAN3_KWARGS = {"num_critical", "first_cutoff", "first_stopband", "last_stopband_rel", "margin_size",
                    "magnitude_ema_beta", "use_radial_filters", "lrelu_upsampling"}


def network_kwargs(obj: PersistentObject) -> dict:
    """The constructor arguments of a captured network, as keyword arguments for ganforge's class."""
    if not isinstance(obj, PersistentObject) or obj.class_name not in NETWORK_CLASSES:
        what = obj.class_name if isinstance(obj, PersistentObject) else type(obj).__name__
        raise ValueError(f"expected an official Generator or Discriminator, got {what}")
    cls = NETWORK_CLASSES[obj.class_name]
    try:
        kwargs = dict(inspect.signature(cls).bind_partial(*obj.init_args).arguments) | obj.init_kwargs
    except TypeError as e:
        raise ValueError(f"the pickle's {obj.class_name} has unexpected constructor arguments ({e})") from None
    if cls is Generator:
        known = set(inspect.signature(cls).parameters)
        alias_free = STYLEGAN3_KWARGS & (set(kwargs) | set(kwargs.get("synthesis_kwargs") or {}))
        if alias_free:
            raise ForeignFileError(f"it is a StyleGAN3 (alias-free) generator ({sorted(alias_free)[0]}=...), "
                                   "which ganforge does not build: import StyleGAN2 networks, such as "
                                   "stylegan3's --cfg=stylegan2 or stylegan2-ada-pytorch's")
        flat = {k: kwargs.pop(k) for k in list(kwargs) if k not in known}
        kwargs["synthesis_kwargs"] = dict(kwargs.get("synthesis_kwargs") or {}) | flat
        for k in DROPPED_KWARGS:
            kwargs["synthesis_kwargs"].pop(k, None)
    return kwargs


def build_network(obj: PersistentObject) -> nn.Module:
    """A ganforge network from a captured official ``Generator`` / ``Discriminator``, weights loaded."""
    kwargs = network_kwargs(obj)  # checks obj first
    net = NETWORK_CLASSES[obj.class_name](**kwargs)
    return load_official_state(net, obj.state_dict()).eval().requires_grad_(False)


def import_networks(source: str | Path | BinaryIO, names=("G_ema", "D")) -> dict[str, nn.Module]:
    """Build and load the named networks (``G``, ``G_ema``, ``D``) of an official network pickle."""
    data = load_pickle(source)
    if not isinstance(data, dict):
        raise ValueError(f"expected a dict of networks in the pickle, got {type(data).__name__}")
    missing = [n for n in names if n not in data]
    if missing:
        raise ValueError(f"the pickle has no '{missing[0]}' (it has: {', '.join(map(str, data))})")
    return {n: build_network(data[n]) for n in names}
