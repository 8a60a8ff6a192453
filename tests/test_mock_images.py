"""The mock's image endpoints through the official OpenAI SDK: real images of the asked size and format,
hosted (url, expiring) or inline (b64_json), edits with a mask, and 400/413 rejections in the envelope."""

from __future__ import annotations

import base64
import email.utils
import functools
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from jsonschema import Draft202012Validator
from PIL import Image

from conformance.embedded import serve
from mock_server import MockConfig, create_app
from spec import find_operation, response_schema, schema_validator
from spec.extensions import upload_limit_bytes

API = "openai_gateway"


@functools.cache
def _validator(operation_id: str, status: int) -> Draft202012Validator:
    schema = response_schema(find_operation(API, operation_id), status)
    assert schema is not None, f"{operation_id} documents no JSON {status}"
    return schema_validator(API, schema)


def validated(operation_id: str, response: httpx.Response) -> Any:
    """The JSON body of ``response``, after checking it against the spec's schema for its status."""
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    _validator(operation_id, response.status_code).validate(body)
    return body


@pytest.fixture(scope="module")
def sdk(mock_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{mock_url}/v1", api_key="sk-test", max_retries=0) as client:
        yield client


def png(width: int, height: int, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format=fmt)
    return buffer.getvalue()


def decoded(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


@pytest.mark.parametrize(
    ("model", "size", "expected", "revised"),
    [
        ("gpt-image-1", "1024x1024", (1024, 1024), False),  # 002 "Example"
        ("gpt-image-1", "auto", (1024, 1024), False),
        ("gpt-image-1", "1536x1024", (1536, 1024), False),
        ("dall-e-3", "1024x1792", (1024, 1792), True),
        ("dall-e-2", "256x256", (256, 256), False),
    ],
)
def test_generate_url_downloads_an_image_of_the_size(sdk: openai.OpenAI, model: str, size: str,
                                                      expected: tuple[int, int], revised: bool) -> None:
    raw = sdk.images.with_raw_response.generate(model=model, prompt="Studio photo of an orange tabby cat",
                                                size=size)
    body = validated("createImage", raw.http_response)
    result = raw.parse()
    assert abs(result.created - time.time()) < 60
    assert len(result.data) == 1 and result.data[0].url and result.data[0].b64_json is None
    download = httpx.get(result.data[0].url, timeout=10)
    assert download.status_code == 200 and download.headers["content-type"] == "image/png"
    image = decoded(download.content)
    assert (image.format, image.size) == ("PNG", expected)
    assert (result.data[0].revised_prompt is not None) is revised
    assert ("usage" in body) is (model == "gpt-image-1")


@pytest.mark.parametrize(("fmt", "pillow"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_generate_b64_json_in_each_output_format(sdk: openai.OpenAI, fmt: str, pillow: str) -> None:
    raw = sdk.images.with_raw_response.generate(model="gpt-image-1", prompt="A logo for a coffee app", n=2,
                                                size="1024x1536", quality="low", response_format="b64_json",
                                                output_format=fmt)
    validated("createImage", raw.http_response)
    result = raw.parse()
    assert len(result.data) == 2 and all(entry.url is None for entry in result.data)
    for entry in result.data:
        image = decoded(base64.b64decode(entry.b64_json or ""))
        assert (image.format, image.size, image.mode) == (pillow, (1024, 1536), "RGB")
    assert (result.output_format, result.size, result.quality, result.background) == (fmt, "1024x1536", "low", "opaque")
    assert result.usage is not None and result.usage.output_tokens == 2 * 408  # OpenAI's low 1024x1536 figure


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_transparent_background_has_alpha(sdk: openai.OpenAI, fmt: str) -> None:
    result = sdk.images.generate(model="gpt-image-1", prompt="A sticker of a cat", background="transparent",
                                 output_format=fmt, response_format="b64_json")
    image = decoded(base64.b64decode(result.data[0].b64_json or ""))
    assert image.mode == "RGBA" and image.format == fmt.upper()
    assert image.getpixel((0, 0))[3] == 0  # background fully transparent
    assert image.getpixel((512, 512))[3] == 255
    assert result.background == "transparent"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-image-1", "size": "1792x1024"}, "size"),  # a dall-e-3 size
        ({"model": "dall-e-3", "size": "640x480"}, "size"),
        ({"model": "gpt-image-1", "size": "big"}, "size"),
        ({"model": "dall-e-3", "n": 2}, "n"),
        ({"model": "dall-e-3", "quality": "low"}, "quality"),
        ({"model": "dall-e-3", "background": "transparent"}, "background"),
        ({"model": "gpt-image-1", "background": "transparent", "output_format": "jpeg"}, "background"),
        ({"model": "dall-e-2", "output_format": "webp"}, "output_format"),
        ({"model": "gpt-image-1", "style": "vivid"}, "style"),
        ({"model": "gpt-4o-mini"}, "model"),
        ({"model": "no-such-model"}, "model"),
        ({"model": "gpt-image-1", "n": 11}, "n"),
    ],
)
def test_generate_rejects_what_the_model_does_not_take(mock_url: str, body: dict[str, Any], param: str) -> None:
    response = httpx.post(f"{mock_url}/v1/images/generations", json={"prompt": "A cat", **body},
                          headers={"Authorization": "Bearer sk-test"}, timeout=10)
    assert response.status_code == 400
    error = validated("createImage", response)["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_edit_with_a_mask_follows_the_input_size(sdk: openai.OpenAI) -> None:
    raw = sdk.images.with_raw_response.edit(model="gpt-image-1", prompt="Add a red hat",
                                            image=("cat.png", png(640, 480), "image/png"),
                                            mask=("mask.png", png(640, 480, "RGBA"), "image/png"))
    validated("createImageEdit", raw.http_response)
    result = raw.parse()
    download = httpx.get(result.data[0].url or "", timeout=10)
    assert decoded(download.content).size == (640, 480) and result.size == "640x480"
    assert result.usage is not None and result.usage.input_tokens_details is not None
    assert result.usage.input_tokens_details.image_tokens > 0


def test_edit_of_several_images_with_a_size(sdk: openai.OpenAI) -> None:
    images = [("a.png", png(300, 300), "image/png"), ("b.jpg", png(200, 100, fmt="JPEG"), "image/jpeg")]
    result = sdk.images.edit(model="gpt-image-1", prompt="Combine them", image=images, size="1536x1024", n=2,
                             response_format="b64_json", output_format="jpeg")
    assert len(result.data) == 2
    for entry in result.data:
        image = decoded(base64.b64decode(entry.b64_json or ""))
        assert (image.format, image.size) == ("JPEG", (1536, 1024))


@pytest.mark.parametrize(
    ("image", "mask", "param"),
    [
        (b"not an image", None, "image"),
        (png(64, 64, fmt="GIF"), None, "image"),
        (png(6001, 6001, "L"), None, "image"),  # over MAX_INPUT_PIXELS
        (png(64, 64), png(32, 32, "RGBA"), "mask"),
        (png(64, 64), png(64, 64, fmt="JPEG"), "mask"),
        (png(64, 64), b"garbage", "mask"),
    ],
    ids=["undecodable", "gif", "too-many-pixels", "mask-size", "mask-jpeg", "mask-undecodable"],
)
def test_edit_rejects_bad_uploads(sdk: openai.OpenAI, image: bytes, mask: bytes | None, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(model="gpt-image-1", prompt="x", image=("in.png", image, "image/png"),
                        mask=("m.png", mask, "image/png") if mask is not None else openai.omit)
    validated("createImageEdit", caught.value.response)
    assert caught.value.body["param"] == param


def test_edit_model_must_edit(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(model="dall-e-3", prompt="x", image=("in.png", png(64, 64), "image/png"))
    assert caught.value.body["param"] == "model"


def test_edit_body_over_the_upload_limit_is_413(sdk: openai.OpenAI, mock_url: str) -> None:
    limit = upload_limit_bytes(find_operation(API, "createImageEdit"))
    assert limit is not None
    boundary = "mockboundary"
    head = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
                   for name, value in (("model", "gpt-image-1"), ("prompt", "x")))
    head += f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    tail = f"\r\n--{boundary}--\r\n".encode()
    headers = {"Authorization": "Bearer sk-test", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    statuses = []
    for total in (limit + 1, limit):  # just over the limit, then exactly at it
        body = head.encode() + bytes(total - len(head) - len(tail)) + tail
        assert len(body) == total
        response = httpx.post(f"{mock_url}/v1/images/edits", content=body, headers=headers, timeout=60)
        validated("createImageEdit", response)
        statuses.append((response.status_code, response.json()["error"]["param"]))
    assert statuses == [(413, None), (400, "image")]  # at the limit the body is read, and the image is bad
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.images.edit(model="gpt-image-1", prompt="x", image=("a.png", bytes(limit + 1), "image/png"))
    assert caught.value.status_code == 413


def test_expired_hosted_url_is_410() -> None:
    with serve(create_app(MockConfig(hosted_url_ttl_s=0.05))) as url, \
            openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0) as client:
        result = client.images.generate(model="dall-e-2", prompt="A cat", size="256x256")
        time.sleep(0.1)
        response = httpx.get(result.data[0].url or "", timeout=10)
    assert response.status_code == 410
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_hosted_url_states_its_expiry() -> None:
    """002 "Hosted URLs typically expire after 1 hour": the download says how long it has left."""
    with serve(create_app(MockConfig())) as url, \
            openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0) as client:
        result = client.images.generate(model="dall-e-2", prompt="A cat", size="256x256")
        response = httpx.get(result.data[0].url or "", timeout=10)
    assert response.status_code == 200
    max_age = int(response.headers["cache-control"].split("max-age=")[1])
    assert 3590 <= max_age <= 3600  # x-hosted-url-ttl-s of createImage, less the moment since
    expires = email.utils.parsedate_to_datetime(response.headers["expires"]).timestamp()
    assert abs(expires - (time.time() + max_age)) < 5
