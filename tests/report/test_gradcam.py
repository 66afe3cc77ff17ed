"""Grad-CAM on the backend under test: the heatmap lights up where a class's
evidence is, in flat, nested (keras.applications, transfer) and residual
models, in either image layout; the feature map is found or named; `explain`
writes one overlay per image; and the heatmaps of one saved model agree on
the three backends (cross)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

import portaclass
from portaclass import layout
from portaclass._lazy import keras
from portaclass.errors import UsageError
from portaclass.models import create_model, get_spec
from portaclass.models.builder import classifier_head
from portaclass.report.feature_map import find_target_layer
from portaclass.report.gradcam import DISPLAY_SIDE, explain_images, gradcam, overlay
from tests.helpers import invoke_cli, on_each_backend, run_python_json

SHAPE = (32, 32, 3)


def batch(n: int = 3, seed: int = 0) -> np.ndarray:
    """Random images in [-1, 1], in the layout the models are built in."""
    images = np.random.default_rng(seed).uniform(-1, 1, (n, *SHAPE)).astype("float32")
    return layout.to_model_layout(images)


@pytest.fixture(scope="module")
def simple_cnn():
    return create_model("simple_cnn", 3, SHAPE, seed=0, width=4, dropout=0.0)


# --- the heatmap shows the evidence -------------------------------------------------------


def colour_model(confidence: float = 10.0):
    """Class 0's logit is the image's mean redness, class 1's its mean
    greenness (times ``confidence``): a 1x1 convolution passes red and green
    through as a 2-channel feature map, the head averages it."""
    inputs = keras.Input(layout.model_input_shape(SHAPE), name="image")
    conv = keras.layers.Conv2D(2, 1, use_bias=False, activation="relu", name="evidence")
    dense = keras.layers.Dense(2, activation="softmax", name="predictions")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D(name="avg_pool")(conv(inputs))))
    conv.set_weights([np.eye(3, 2, dtype="float32").reshape(1, 1, 3, 2)])
    dense.set_weights([np.eye(2, dtype="float32") * confidence, np.zeros(2, "float32")])
    return model


def red_and_green_squares():
    """A red square top left, a smaller green one bottom right; their masks."""
    image = np.zeros((1, *SHAPE), "float32")
    red, green = np.zeros(SHAPE[:2], bool), np.zeros(SHAPE[:2], bool)
    red[2:12, 2:12] = True
    green[24:30, 24:30] = True
    image[0][red, 0] = 1.0
    image[0][green, 1] = 1.0
    return layout.to_model_layout(image), red, green


def test_the_heatmap_lights_up_exactly_where_the_class_evidence_is():
    model = colour_model()
    image, red, green = red_and_green_squares()
    predicted = gradcam(model, image)
    assert predicted.layer == "evidence" and predicted.class_indices.tolist() == [0]
    np.testing.assert_allclose(predicted.heatmaps[0], red.astype("float32"), atol=1e-6)
    np.testing.assert_allclose(gradcam(model, image, class_index=1).heatmaps[0],
                               green.astype("float32"), atol=1e-6)


def test_a_confident_prediction_still_has_a_heatmap():
    """The score differentiated is the logit: the softmax probability of a
    sure model is exactly 1.0 in float32 and its gradient zero."""
    model = colour_model(confidence=1e4)
    image, red, _ = red_and_green_squares()
    result = gradcam(model, image)
    assert result.probabilities[0, 0] == 1.0
    np.testing.assert_allclose(result.heatmaps[0], red.astype("float32"), atol=1e-6)


def test_heatmaps_are_normalised_sized_like_the_feature_map_and_follow_the_class(simple_cnn):
    x = batch(4)
    result = gradcam(simple_cnn, x)
    assert result.layer == "block3_pool"
    assert result.heatmaps.shape == (4, 4, 4) and result.heatmaps.dtype == np.float32
    assert result.heatmaps.min() >= 0.0
    assert set(np.round(result.heatmaps.max(axis=(1, 2)), 6)) <= {0.0, 1.0}
    probabilities = portaclass.backend.to_numpy(simple_cnn.predict(x, verbose=0))
    np.testing.assert_allclose(result.probabilities, probabilities, atol=1e-5)
    np.testing.assert_array_equal(result.class_indices, probabilities.argmax(axis=1))
    per_class = [gradcam(simple_cnn, x, class_index=c).heatmaps for c in range(3)]
    assert not np.allclose(per_class[0], per_class[1]) and not np.allclose(per_class[1], per_class[2])


def test_one_class_per_image_can_be_asked_for(simple_cnn):
    x = batch(2)
    mixed = gradcam(simple_cnn, x, class_index=[2, 0])
    assert mixed.class_indices.tolist() == [2, 0]
    np.testing.assert_allclose(mixed.heatmaps[0], gradcam(simple_cnn, x[:1], class_index=2).heatmaps[0],
                               atol=1e-5)
    with pytest.raises(UsageError, match=r"`class_index` must be in \[0, 3\)"):
        gradcam(simple_cnn, x, class_index=3)


# --- nested, residual and transformer models --------------------------------------------


def test_a_nested_backbone_is_explained_inside_it_as_the_same_model_flattened(simple_cnn):
    """Nested as ``build_transfer_model`` nests a frozen base (called with
    ``training=False``), and as pretrained keras.applications bases stay."""
    base = get_spec("simple_cnn").features(SHAPE, width=4)
    base.trainable = False
    inputs = keras.Input(base.inputs[0].shape[1:], name="image")
    nested = keras.Model(inputs, classifier_head(base(inputs, training=False), 3, 0.0))
    nested.set_weights(simple_cnn.get_weights())
    x = batch()
    for layer, path in ((None, "backbone/block3_pool"), ("block2_relu", "backbone/block2_relu")):
        inside, flat = gradcam(nested, x, layer=layer), gradcam(simple_cnn, x, layer=layer)
        assert inside.layer == path
        np.testing.assert_allclose(inside.heatmaps, flat.heatmaps, atol=1e-5)
        assert np.abs(inside.channel_weights).max() > 0


# JAX compiles each new op for seconds here: the JAX suite leaves these out
# (the cross test still runs a residual model's Grad-CAM on JAX).
@pytest.mark.jax_slow
def test_a_keras_applications_base_is_explained_at_its_last_feature_map():
    model = create_model("mobilenet_v2", 3, (64, 64, 3), seed=0)
    assert find_target_layer(model) == ("backbone", "out_relu")
    images = layout.to_model_layout(np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype("float32"))
    result = gradcam(model, images)
    assert result.layer == "backbone/out_relu" and result.heatmaps.shape == (1, 2, 2)
    assert np.abs(result.channel_weights).max() > 0


@pytest.mark.jax_slow
def test_a_layer_inside_a_residual_block_is_itself_the_differentiated_variable():
    """The split model reads the named map, and the image for the paths
    around it: were the map recomputed from the image, its gradient (and so
    every channel weight) would be zero."""
    model = create_model("resnet18", 3, SHAPE, seed=0, width=8)
    assert find_target_layer(model) == ("stage4_block2_out",)
    result = gradcam(model, batch(2), layer="stage4_block2_1_relu")
    assert result.layer == "stage4_block2_1_relu" and result.heatmaps.shape == (2, 4, 4)
    assert np.abs(result.channel_weights).max() > 0


def test_a_layer_the_model_lacks_is_named_with_layers_that_would_do(simple_cnn):
    with pytest.raises(UsageError) as raised:
        gradcam(simple_cnn, batch(1), layer="conv9")
    message = str(raised.value)
    assert message.startswith("`layer` 'conv9' is not a layer of simple_cnn")
    assert "block3_pool" in message and "\n" not in message
    with pytest.raises(UsageError, match=r"'avg_pool' outputs shape \(None, 16\); .*4-D"):
        gradcam(simple_cnn, batch(1), layer="avg_pool")


@pytest.mark.jax_slow
def test_a_vision_transformer_has_no_feature_map_to_explain():
    model = create_model("vit_tiny", 3, SHAPE, seed=0, depth=1)
    with pytest.raises(UsageError) as raised:
        find_target_layer(model)
    assert str(raised.value).startswith("vit_tiny has no 4-D feature map")
    assert raised.value.option == "layer" and "\n" not in str(raised.value)


# --- pictures and files -------------------------------------------------------------------


def test_overlay_is_enlarged_to_be_seen_and_colours_the_hot_region():
    image = np.full((32, 32, 1), 128, np.uint8)
    heatmap = np.zeros((4, 4), np.float32)
    heatmap[0, 0] = 1.0
    picture = overlay(image, heatmap, min_side=DISPLAY_SIDE)
    assert picture.shape == (224, 224, 3) and picture.dtype == np.uint8
    hot, cold = picture[5, 5].astype(int), picture[-5, -5].astype(int)
    assert hot[0] > hot[2] and cold[2] > cold[0]  # jet: red where hot, blue where cold
    assert overlay(np.zeros((40, 50, 3), np.uint8), heatmap).shape == (40, 50, 3)


@pytest.fixture(scope="module")
def images(trained_run, tmp_path_factory):
    """Two of the run's images (one name twice, in two folders) and a broken file."""
    _, root = trained_run
    folder = tmp_path_factory.mktemp("to_explain")
    (folder / "b").mkdir()
    shutil.copy(root / "circle" / "circle_0000.png", folder / "a.png")
    shutil.copy(root / "star" / "star_0001.png", folder / "b" / "a.png")
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def test_explain_writes_one_overlay_per_image_and_reports_a_broken_one(trained_run, images, tmp_path):
    run_dir = trained_run[0].run_dir
    results = explain_images(run_dir, [images], out=tmp_path / "cams")
    assert [r.name.replace(f"{images}/", "") for r in results] == ["a.png", "b/a.png", "broken.png"]
    assert [r.path and r.path.rsplit("/", 1)[-1] for r in results] == [
        "a_gradcam.png", "a-2_gradcam.png", None]
    assert results[2].error and results[2].class_name is None
    predictions = portaclass.predict(run_dir, [images / "a.png", images / "b" / "a.png"], top_k=1)
    for result, prediction in zip(results, predictions):
        assert result.class_name == result.predicted == prediction.label
        assert result.probability == pytest.approx(prediction.probability, abs=1e-4)
        with Image.open(result.path) as picture:
            assert picture.mode == "RGB" and min(picture.size) >= DISPLAY_SIDE
    asked = explain_images(run_dir, images / "a.png", out=tmp_path / "stars", class_name="star")
    assert asked[0].class_name == "star" and asked[0].predicted == results[0].predicted


def test_explain_command_writes_the_overlays_and_names_an_unknown_class(trained_run, images, tmp_path):
    run_dir, image = str(trained_run[0].run_dir), str(images / "a.png")
    result = invoke_cli(["explain", run_dir, image, "--out", str(tmp_path / "cams")])
    assert result.exit_code == 0, result.output
    assert "a_gradcam.png" in result.stdout and "%" in result.stdout
    assert (tmp_path / "cams" / "a_gradcam.png").is_file()
    wrong = invoke_cli(["explain", run_dir, image, "--out", str(tmp_path / "x"), "--class", "dog"])
    assert wrong.exit_code == 2
    assert wrong.stderr.strip() == ("error: --class 'dog' is not a class of this model; "
                                    "its classes: circle, square, star, triangle")
    assert not (tmp_path / "x").exists()


def test_the_run_report_shows_grad_cam_overlays(trained_run):
    page = (trained_run[0].run_dir / "report.html").read_text()
    assert "Where the model looked (Grad-CAM)" in page


# --- the same heatmaps on every backend ---------------------------------------------------

HEATMAPS = """
import json, numpy as np
from portaclass import layout
from portaclass._lazy import keras
from portaclass.report.gradcam import gradcam
model = keras.saving.load_model({path!r})
x = layout.to_model_layout(np.load({inputs!r}))
maps = {{}}
for layer in (None, "stage4_block2_1_relu"):  # the pooled map, and one inside a residual block
    result = gradcam(model, x, class_index=[0, 1, 2], layer=layer)
    maps[result.layer] = result.heatmaps.tolist()
print(json.dumps(maps))
"""


@pytest.mark.cross
def test_heatmaps_of_one_saved_model_agree_on_every_backend(tmp_path):
    model = create_model("resnet18", 3, SHAPE, seed=0, width=8)
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", np.random.default_rng(1).uniform(-1, 1, (3, *SHAPE)).astype("float32"))
    code = HEATMAPS.format(path=str(tmp_path / "model.keras"), inputs=str(tmp_path / "x.npy"))
    results = on_each_backend(lambda b: run_python_json(code, b))
    for layer in ("stage4_block2_out", "stage4_block2_1_relu"):
        maps = {b: np.asarray(r[layer]) for b, r in results.items()}
        assert all(m.shape == (3, 4, 4) and m.max() == pytest.approx(1.0) for m in maps.values())
        for other in ("tensorflow", "jax"):
            difference = np.abs(maps[other] - maps["torch"]).max()
            assert difference < 1e-3, f"{layer}: {other} differs from torch by {difference}"


@pytest.mark.one_backend
def test_overlays_are_drawn_in_jet_colours_without_matplotlib():
    """The default colours are computed (no matplotlib import in a run's
    report) and match matplotlib's own "jet" within 0.15 (0.03 on average);
    other colormaps are matplotlib's, by name."""
    from matplotlib import colormaps

    from portaclass.report.gradcam import colour_map

    values = np.linspace(0.0, 1.0, 101)
    ours = colour_map(values)
    assert ours.shape == (101, 3)
    np.testing.assert_allclose(ours, colormaps["jet"](values)[:, :3], atol=0.15)
    assert np.abs(ours - colormaps["jet"](values)[:, :3]).mean() < 0.03
    assert ours[0].argmax() == 2 and ours[-1].argmax() == 0  # cold is blue, hot is red
    np.testing.assert_allclose(colour_map(values, "viridis"), colormaps["viridis"](values)[:, :3])
