"""Reading images of every common format as 8-bit RGB."""
import numpy as np
import pytest
from PIL import Image

from mmmt.apis import list_images, pil_to_rgb, read_image_rgb, to_rgb_uint8


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (21, 34, 3), dtype=np.uint8)


def test_rgb_png_and_rgba_png_read_the_same_colours(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / 'a.png')
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1, ), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'b.png')
    np.testing.assert_array_equal(read_image_rgb(str(tmp_path / 'a.png')), rgb)
    np.testing.assert_array_equal(read_image_rgb(str(tmp_path / 'b.png')), rgb)


def test_grayscale_and_16_bit_become_8_bit_rgb(tmp_path, rgb):
    gray = rgb[..., 0]
    Image.fromarray(gray).save(tmp_path / 'g.png')
    Image.fromarray((gray.astype(np.uint16) * 257)).save(tmp_path / 'g16.png')
    out = read_image_rgb(str(tmp_path / 'g.png'))
    assert out.shape == (21, 34, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))
    assert Image.open(tmp_path / 'g16.png').mode.startswith('I')
    np.testing.assert_array_equal(read_image_rgb(str(tmp_path / 'g16.png')), out)


def test_16_bit_colour_png(tmp_path, rgb):
    import cv2
    cv2.imwrite(str(tmp_path / 'c16.png'), (rgb[..., ::-1].astype(np.uint16) * 257))
    np.testing.assert_array_equal(read_image_rgb(str(tmp_path / 'c16.png')), rgb)


def test_jpeg_palette_and_exif_orientation(tmp_path, rgb):
    yy, xx = np.mgrid[:21, :34]
    smooth = np.stack([yy * 10, xx * 7, yy * 3 + xx * 3], axis=2).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / 'a.jpg', quality=95)
    out = read_image_rgb(str(tmp_path / 'a.jpg'))
    assert out.shape == smooth.shape and np.abs(out.astype(int) - smooth).mean() < 4
    Image.fromarray(rgb).convert('P').save(tmp_path / 'p.png')
    assert read_image_rgb(str(tmp_path / 'p.png')).shape == rgb.shape
    # EXIF orientation 6 (rotate 90 cw to display): the array is returned as displayed
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / 'r.jpg', exif=exif, quality=95)
    assert read_image_rgb(str(tmp_path / 'r.jpg')).shape == (34, 21, 3)


def test_arrays_of_any_dtype_and_layout(rgb):
    np.testing.assert_array_equal(to_rgb_uint8(rgb), rgb)
    np.testing.assert_array_equal(to_rgb_uint8(rgb / 255.0), rgb)
    np.testing.assert_array_equal(to_rgb_uint8(rgb.astype(np.uint16) * 257), rgb)
    np.testing.assert_array_equal(to_rgb_uint8(rgb[..., :1])[..., 2], rgb[..., 0])
    rgba = np.concatenate([rgb, rgb[..., :1]], axis=2)
    np.testing.assert_array_equal(to_rgb_uint8(rgba), rgb)
    assert to_rgb_uint8(np.ones((4, 5), bool)).max() == 255
    with pytest.raises(ValueError, match='my_array'):
        to_rgb_uint8(np.zeros((4, 5, 7)), 'my_array')
    with pytest.raises(ValueError, match='NaN'):
        to_rgb_uint8(np.full((4, 5), np.nan))


def test_unreadable_files_are_named(tmp_path):
    bad = tmp_path / 'notes.png'
    bad.write_text('this is not an image')
    with pytest.raises(OSError, match='notes.png'):
        read_image_rgb(str(bad))
    truncated = tmp_path / 'cut.jpg'
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 9).save(tmp_path / 'full.jpg')
    truncated.write_bytes((tmp_path / 'full.jpg').read_bytes()[:200])
    with pytest.raises(OSError, match='cut.jpg'):
        read_image_rgb(str(truncated))
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        read_image_rgb(str(tmp_path / 'missing.jpg'))


def test_list_images(tmp_path):
    for name in ('b.JPG', 'a.png', 'c.tif'):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / name)
    (tmp_path / 'readme.txt').write_text('x')
    (tmp_path / 'sub.png').mkdir()
    assert [p.rsplit('/', 1)[1] for p in list_images(str(tmp_path))] == ['a.png', 'b.JPG',
                                                                         'c.tif']
    with pytest.raises(ValueError, match='No image files'):
        list_images(str(tmp_path / 'sub.png'))


def test_list_images_skips_hidden_files(tmp_path):
    # macOS AppleDouble files ('._a.png') hold metadata, not pixels: listed, they failed to read
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / 'a.png')
    (tmp_path / '._a.png').write_bytes(b'\x00\x05\x16\x07' + bytes(60))
    (tmp_path / '.DS_Store').write_bytes(bytes(8))
    assert [p.rsplit('/', 1)[1] for p in list_images(str(tmp_path))] == ['a.png']
    (tmp_path / 'a.png').unlink()
    with pytest.raises(ValueError, match=r"No image files .* \(only hidden ones: \._a\.png\)"):
        list_images(str(tmp_path))
    # named explicitly, a hidden image is an input like any other
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / '.b.png')
    assert read_image_rgb(str(tmp_path / '.b.png')).shape == (4, 4, 3)


def test_decompression_bomb_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / 'huge.png'
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1000)  # 10000 pixels: a "bomb"
    with pytest.raises(OSError, match=r'Cannot read image file .*huge\.png: .*MAX_IMAGE_PIXELS'):
        read_image_rgb(str(path))


@pytest.mark.parametrize('dtype', [np.int64, np.int32, np.int16, np.uint32])
def test_8_bit_values_in_a_wider_integer_type_are_8_bit(rgb, dtype):
    # np.array(img, int) and integer arithmetic give int64 arrays of 0..255: read as 16-bit
    # (value / 256) they were an all-black image
    np.testing.assert_array_equal(to_rgb_uint8(rgb.astype(dtype)), rgb)
    # values above 255 are 16-bit data, scaled as uint16 is (value / 256)
    np.testing.assert_array_equal(to_rgb_uint8(rgb.astype(dtype) * 128), rgb // 2)


def test_uint16_of_8_bit_values_warns_that_it_is_nearly_black(rgb):
    with pytest.warns(UserWarning, match=r'my_array: a uint16 image .*astype\(np.uint8\)'):
        out = to_rgb_uint8(rgb.astype(np.uint16), 'my_array')
    assert out.max() == 0  # documented: uint16 is 16-bit


def test_pil_images_are_converted_like_files(tmp_path, rgb):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / 'r.jpg', exif=exif, quality=95)
    Image.fromarray(rgb).convert('P').save(tmp_path / 'p.png')
    Image.fromarray(rgb).convert('CMYK').save(tmp_path / 'c.jpg', quality=95)
    for name in ('r.jpg', 'p.png', 'c.jpg'):
        with Image.open(tmp_path / name) as im:
            np.testing.assert_array_equal(pil_to_rgb(im), read_image_rgb(str(tmp_path / name)))
    assert pil_to_rgb(Image.open(tmp_path / 'r.jpg')).shape == (34, 21, 3)  # as displayed
    np.testing.assert_array_equal(pil_to_rgb(Image.fromarray(rgb[..., 0])),
                                  np.repeat(rgb[..., :1], 3, axis=2))


def test_gray_alpha_keeps_gray_and_floats_round():
    """(H, W, 2) keeps channel 0 (gray, not alpha); floats round to nearest."""
    ga = np.array([[[10, 200], [20, 0]]], np.uint8)
    np.testing.assert_array_equal(to_rgb_uint8(ga)[0, :, 0], [10, 20])
    f = np.array([[100.6, 2.5, 254.7]], np.float32)
    np.testing.assert_array_equal(to_rgb_uint8(f)[0, :, 0], [101, 2, 255])


def test_zero_width_image_is_rejected():
    with pytest.raises(ValueError, match='empty image'):
        to_rgb_uint8(np.zeros((3, 0), np.uint8))


def test_32_bit_mode_i_is_scaled_to_its_range():
    im = Image.fromarray(np.array([[0, 65536, 131072]], np.int32), mode='I')
    np.testing.assert_array_equal(pil_to_rgb(im)[0, :, 0], [0, 127, 255])
