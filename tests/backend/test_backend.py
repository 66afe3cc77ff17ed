"""The adaptation layer: every function, on the backend under test."""

from __future__ import annotations

import keras
import ml_dtypes
import numpy as np
import pytest

from portaclass import backend
from portaclass.errors import BackendError


def small_model(seed: int = 0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_to_numpy_converts_backend_tensors_in_nested_structures():
    tensor = keras.ops.convert_to_tensor(np.arange(6, dtype="float32").reshape(2, 3))
    nested = {"a": tensor, "b": [tensor, (tensor * 2, 3.0)]}
    out = backend.to_numpy(nested)
    assert isinstance(out["a"], np.ndarray) and out["a"].shape == (2, 3)
    np.testing.assert_array_equal(out["b"][1][0], np.arange(6).reshape(2, 3) * 2)
    assert isinstance(out["b"], list) and isinstance(out["b"][1], tuple)
    assert float(out["b"][1][1]) == 3.0


def test_to_numpy_keeps_bfloat16_values():
    tensor = keras.ops.cast(keras.ops.convert_to_tensor([1.5, -2.25, 3.0]), "bfloat16")
    out = backend.to_numpy(tensor)
    assert out.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(out.astype(np.float32), [1.5, -2.25, 3.0])


def test_to_numpy_handles_variables_and_gradient_tracking_tensors():
    variable = keras.Variable(np.ones((2, 2), "float32"))
    np.testing.assert_array_equal(backend.to_numpy(variable), np.ones((2, 2)))
    model = small_model()
    # Model outputs on torch carry autograd history; np.array() on them fails.
    out = model(np.ones((2, 4), "float32"), training=True)
    assert backend.to_numpy(out).shape == (2, 3)


def test_list_devices_always_has_the_cpu_with_its_memory():
    devices = backend.list_devices()
    cpus = [d for d in devices if d.kind == "cpu"]
    assert len(cpus) == 1 and cpus[0].index == 0
    assert cpus[0].memory_bytes and cpus[0].memory_bytes > 2**28
    assert all(d.kind in ("cpu", "gpu") for d in devices)


def test_on_cpu_places_new_tensors_and_variables_on_the_cpu():
    with backend.on_device("cpu"):
        variable = keras.Variable(np.zeros(3, "float32"))
        tensor = keras.ops.ones((2,))
    assert backend.device_of(variable).kind == "cpu"
    assert backend.device_of(tensor).kind == "cpu"


@pytest.mark.parametrize("spec", ["tpu", "gpu:x", "", "cpu:1:2"])
def test_bad_device_spec_is_a_clear_error(spec):
    with pytest.raises(BackendError, match="device"):
        with backend.on_device(spec):
            pass


def test_missing_gpu_is_named_with_the_available_devices():
    count = sum(d.kind == "gpu" for d in backend.list_devices())
    with pytest.raises(BackendError, match=rf"no device gpu:{count} .*available: cpu:0"):
        with backend.on_device(f"gpu:{count}"):
            pass


def test_cpu_copy_predicts_the_same_with_variables_on_the_cpu():
    model = small_model()
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = np.arange(16) % 3
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    copy = backend.cpu_copy(model)
    assert copy is not model
    assert all(backend.device_of(v).kind == "cpu" for v in copy.weights)
    np.testing.assert_allclose(
        backend.to_numpy(copy.predict(x, verbose=0)),
        backend.to_numpy(model.predict(x, verbose=0)),
        rtol=1e-5, atol=1e-6,
    )
    assert copy.compiled
    if backend.NAME == "tensorflow":
        assert copy.jit_compile is False  # XLA would pin the copy's variables
    # The copy can be evaluated with the original's compile config.
    assert set(copy.evaluate(x, y, verbose=0, return_dict=True)) >= {"loss", "accuracy"}


def current_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def test_peak_memory_on_cpu_is_at_least_the_current_resident_set():
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    rss = current_rss_bytes()
    peak = backend.peak_memory("cpu")
    # ru_maxrss is sampled by the kernel and may trail VmRSS by a few pages.
    assert 0.9 * rss <= peak < 64 * rss  # bytes, not KiB or pages
    assert block.sum() > 0


def test_seed_everything_repeats_numpy_and_keras_draws():
    def draws(seed):
        backend.seed_everything(seed)
        return np.random.rand(3), backend.to_numpy(keras.random.normal((3,))), small_model(seed).get_weights()[0]

    a, b, c = draws(7), draws(7), draws(8)
    for left, right in zip(a, b):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])


# --- GPU-only paths: run on a machine with a GPU --------------------------------


@pytest.mark.gpu
def test_gpu_tensor_to_numpy_and_device_of():
    with backend.on_device("gpu"):
        tensor = keras.ops.ones((4, 4), dtype="bfloat16")
    assert backend.device_of(tensor).kind == "gpu"
    out = backend.to_numpy({"x": [tensor]})
    np.testing.assert_array_equal(out["x"][0].astype(np.float32), np.ones((4, 4)))


@pytest.mark.gpu
def test_model_trained_on_gpu_predicts_on_cpu_after_cpu_copy():
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = np.arange(32) % 3
    with backend.on_device("gpu"):
        model = small_model()
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        expected = backend.to_numpy(model.predict(x, verbose=0))
    assert backend.device_of(model.weights[0]).kind == "gpu"
    copy = backend.cpu_copy(model)
    with backend.on_device("cpu"):
        got = backend.to_numpy(copy.predict(x, verbose=0))
    assert all(backend.device_of(v).kind == "cpu" for v in copy.weights)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


@pytest.mark.gpu
def test_peak_memory_on_gpu_counts_device_bytes():
    with backend.on_device("gpu"):
        tensor = keras.ops.ones((1024, 1024, 16))
    assert backend.peak_memory("gpu") >= 1024 * 1024 * 16 * 4
    del tensor


def test_a_deterministic_seed_does_not_outlive_its_run(backend_name):
    """The determinism switches are process-wide: a notebook's second run
    without --deterministic must compute as a fresh process does."""
    if backend_name == "jax":
        pytest.skip("JAX's only switch is a GPU XLA flag read at start-up")
    if backend_name == "tensorflow":
        from tensorflow.python.framework.config import is_op_determinism_enabled as enabled
    else:
        from torch import are_deterministic_algorithms_enabled as enabled
    backend.seed_everything(0, deterministic=True)
    assert enabled()
    backend.seed_everything(0)
    assert not enabled()


# --- value_and_grad: one gradient function, one implementation per backend ------


def test_value_and_grad_matches_the_analytic_gradient_of_a_sum_of_squares():
    x = np.array([[1.0, -2.0], [0.5, 3.0]], "float32")
    value, grad = backend.value_and_grad(lambda t: keras.ops.sum(t * t), x)
    assert isinstance(value, np.ndarray) and isinstance(grad, np.ndarray)
    assert value.shape == () and float(value) == pytest.approx(14.25)
    np.testing.assert_allclose(grad, 2 * x, rtol=1e-6)
    assert grad.dtype == np.float32


def test_value_and_grad_differentiates_through_a_keras_layer():
    """The Grad-CAM use: a layer's weights are constants, the input varies."""
    layer = keras.layers.Dense(3, use_bias=False)
    layer.build((None, 2))
    kernel = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]], "float32")
    layer.set_weights([kernel])
    x = np.ones((4, 2), "float32")
    value, grad = backend.value_and_grad(lambda t: keras.ops.sum(layer(t)), x)
    assert float(value) == pytest.approx(4 * kernel.sum())
    np.testing.assert_allclose(grad, np.tile(kernel.sum(axis=1), (4, 1)), rtol=1e-6)


def test_value_and_grad_of_a_value_that_ignores_x_is_zero():
    x = np.ones((2, 3), "float32")
    value, grad = backend.value_and_grad(lambda t: keras.ops.sum(keras.ops.ones((2,))), x)
    assert float(value) == 2.0
    np.testing.assert_array_equal(grad, np.zeros_like(x))


def test_value_and_grad_of_a_non_scalar_is_the_same_error_on_every_backend():
    with pytest.raises(BackendError) as raised:
        backend.value_and_grad(lambda t: t * 2, np.ones(3, "float32"))
    assert str(raised.value) == "value_and_grad needs `fn` to return a scalar; it returned shape (3,)"


def test_value_and_grad_of_integers_is_an_error_naming_the_dtype():
    with pytest.raises(BackendError) as raised:
        backend.value_and_grad(lambda t: keras.ops.sum(t), np.ones(3, "int32"))
    assert str(raised.value) == "value_and_grad needs a floating-point `x`; received dtype int32"


def test_jax_keeps_compiled_programs_in_portaclass_cache_unless_told_otherwise(backend_name, tmp_path):
    """A second run of the same model on JAX skips XLA's compile: the compiled
    programs go to portaclass' cache folder, unless the user chose a folder of
    their own or turned it off."""
    if backend_name != "jax":
        pytest.skip("JAX's persistent compilation cache")
    import subprocess
    import sys

    from portaclass.backend_process import subprocess_env

    def cache_folder(**env):
        environment = subprocess_env("jax", PORTACLASS_CACHE_DIR=str(tmp_path))
        environment.pop("JAX_COMPILATION_CACHE_DIR", None)  # make test sets one for the suite
        environment.update(env)
        done = subprocess.run([sys.executable, "-c", "import portaclass.backend, jax; "
                               "print(jax.config.jax_compilation_cache_dir)"],
                              env=environment, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip()

    assert cache_folder() == str(tmp_path / "jax")
    assert cache_folder(JAX_COMPILATION_CACHE_DIR=str(tmp_path / "mine")) == str(tmp_path / "mine")
    assert cache_folder(PORTACLASS_JAX_CACHE="0") == "None"
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    assert cache_folder(PORTACLASS_CACHE_DIR=str(blocked)) == "None"  # unusable: no cache, no noise
