import pytest

from playground.config import Limits, limits_from_env


def test_defaults_follow_the_product_spec():
    limits = Limits()
    assert limits.max_image_pixels == 40_000_000 and limits.max_image_side == 10_000
    assert limits.image_formats == ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
    assert limits.max_upload_bytes == 256 * 1024**2
    assert limits.max_zip_members == 5_000 and limits.max_zip_bytes == 500 * 1024**2
    assert (limits.min_classes, limits.max_classes) == (2, 100)
    assert limits.max_ig_steps == 200


def test_environment_overrides():
    limits = limits_from_env({"PLAYGROUND_MAX_IMAGE_PIXELS": "20_000_000", "PLAYGROUND_IMAGE_FORMATS": "png, jpeg"})
    assert limits.max_image_pixels == 20_000_000
    assert limits.image_formats == ("PNG", "JPEG")
    assert limits.max_image_side == 10_000


@pytest.mark.parametrize("value", ["lots", "-5", "0"])
def test_bad_environment_values_are_refused(value):
    with pytest.raises(ValueError, match="PLAYGROUND_MAX_IMAGE_SIDE"):
        limits_from_env({"PLAYGROUND_MAX_IMAGE_SIDE": value})


def test_limits_are_frozen():
    with pytest.raises(AttributeError):
        Limits().max_image_pixels = 1
