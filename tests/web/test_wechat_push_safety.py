"""Hostile WeChat pushes over real HTTP: entity tricks in other encodings, unsigned bombs, and safe mode
(encrypted pushes) with its message signature. Each is refused with nothing written to the store."""

from __future__ import annotations

from dataclasses import replace

import pytest
import requests
import sqlalchemy as sa

from outreach.core.errors import InputError
from outreach.store.schema import consents, conversations, events, inbound_messages
from outreach.web import wechat_crypto
from tests.pipeline import Pipeline
from tests.web_server import WebServer
from tests.wechat_pushes import fields_xml, safe_mode, url_params

TOKEN = "wechat-verify-token"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F6dPqCl1sAf9ZL2AwCKY6Xu"
APP_ID = "wx5823bf96d3bd56c7"
OPENID = "oWxYz_customer_0002"

ENTITY_PUSH = (
    '<?xml version="1.0" encoding="{encoding}"?>'
    '<!DOCTYPE xml [<!ENTITY e "STOP">]>'
    f"<xml><ToUserName>gh_bank</ToUserName><FromUserName>{OPENID}</FromUserName>"
    "<CreateTime>1732838460</CreateTime><MsgType>text</MsgType><Content>&e;</Content><MsgId>1</MsgId></xml>"
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode() for i in range(1, 10)
    )
    + b"]><xml><MsgType>text</MsgType><FromUserName>x</FromUserName><Content>&lol9;</Content></xml>"
)


def text_push(content: str, msg_id: str) -> bytes:
    return fields_xml({"ToUserName": "gh_bank", "FromUserName": OPENID, "CreateTime": "1732838460",
                       "MsgType": "text", "Content": content, "MsgId": msg_id})  # fmt: skip


def written(p: Pipeline) -> dict[str, int]:
    """What a push could have written: rows of the tables inbound messages and their effects land in."""
    with p.engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (inbound_messages, events, consents, conversations)
        }


def serve(p: Pipeline, **settings: str) -> WebServer:
    p.settings = replace(p.settings, wechat_token=TOKEN, **settings)
    return WebServer(p.settings)


def test_entities_in_other_encodings_and_unsigned_bombs_are_refused_unparsed(pipeline: Pipeline) -> None:
    p = pipeline
    p.import_csv(f"id,name,wechat_openid,consent_wechat\nw2,李雷,{OPENID},yes\n")
    before = written(p)
    with serve(p) as web:
        url = web.url("/webhooks/wechat")

        def post(body: bytes, params: dict[str, str] | None = None) -> requests.Response:
            """`body` pushed with `params`, else signed as WeChat signs a new push."""
            return requests.post(url, params=url_params(TOKEN) if params is None else params, data=body, timeout=10)

        # A DTD in UTF-16 (with or without a BOM), in UTF-8 after a BOM, in UTF-8 declared as another encoding.
        for body in (
            ENTITY_PUSH.format(encoding="UTF-16").encode("utf-16"),
            ENTITY_PUSH.format(encoding="UTF-16").encode("utf-16-le"),
            ENTITY_PUSH.format(encoding="UTF-16BE").encode("utf-16-be"),
            b"\xef\xbb\xbf" + ENTITY_PUSH.format(encoding="UTF-8").encode(),
            ENTITY_PUSH.format(encoding="utf-8").encode(),
            ENTITY_PUSH.format(encoding="ISO-8859-1").encode(),
        ):
            answer = post(body)
            assert answer.status_code == 400, (body[:40], answer.text)
        # Not UTF-8 at all, even without a DTD.
        assert post(text_push("退订", "2").decode().encode("utf-16")).status_code == 400
        assert post(text_push("退订", "3").decode().encode("gb18030")).status_code == 400
        # A billion-laughs body: signed, refused as a DTD; unsigned or forged, refused before it is read at all.
        assert post(BILLION_LAUGHS).status_code == 400
        assert post(BILLION_LAUGHS, params={}).status_code == 403
        assert post(BILLION_LAUGHS, params={**url_params(TOKEN), "signature": "0" * 40}).status_code == 403
        assert post(b"<xml><a>", params={}).status_code == 403  # even malformed XML: the signature comes first
        assert written(p) == before
        # The same message without tricks is taken (so the refusals above were not for another reason).
        assert post(b"\xef\xbb\xbf" + text_push("你好", "4")).text == "success"
    with p.engine.connect() as conn:
        assert conn.execute(sa.select(inbound_messages.c.body)).scalars().all() == ["你好"]


def test_tencents_own_sample_decrypts_and_its_message_signature_matches() -> None:
    encrypted = (
        "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2Ld"
        "JF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux"
        "5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJ"
        "pXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCz"
        "pu9GhglF2PE="
    )
    signature = wechat_crypto.message_signature("spamtest", "1409735669", "1320562132", encrypted)
    assert signature == "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
    key = wechat_crypto.aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
    message = wechat_crypto.decrypt(key, "wx2c2769f8efd9abc2", encrypted).decode()
    assert "<Content><![CDATA[abcdteT]]></Content>" in message
    with pytest.raises(wechat_crypto.DecryptionError):
        wechat_crypto.decrypt(key, "wx_another_account", encrypted)
    for bad in ("short", AES_KEY + "x", "!" * 43):
        with pytest.raises(InputError, match="OUTREACH_WECHAT_AES_KEY"):
            wechat_crypto.aes_key(bad)


def test_safe_mode_takes_encrypted_pushes_and_refuses_everything_else(pipeline: Pipeline) -> None:
    p = pipeline
    p.import_csv(f"id,name,wechat_openid,consent_wechat\nw2,李雷,{OPENID},yes\n")
    with serve(p, wechat_aes_key=AES_KEY, wechat_app_id=APP_ID) as web:
        url = web.url("/webhooks/wechat")

        def post(params: dict[str, str], body: bytes) -> requests.Response:
            return requests.post(url, params=params, data=body, timeout=10)

        before = written(p)
        params, body = safe_mode(TOKEN, AES_KEY, APP_ID, text_push("信用卡账单有误", "11"))
        assert post({**params, "msg_signature": "0" * 40}, body).status_code == 403
        assert post({k: v for k, v in params.items() if k != "msg_signature"}, body).status_code == 403
        assert post(url_params(TOKEN), text_push("plaintext", "12")).status_code == 400
        other_account = safe_mode(TOKEN, AES_KEY, "wx_another_account", text_push("x", "13"))
        assert post(*other_account).status_code == 400
        inner_dtd = safe_mode(TOKEN, AES_KEY, APP_ID, ENTITY_PUSH.format(encoding="UTF-8").encode())
        assert post(*inner_dtd).status_code == 400
        inner_utf16 = safe_mode(TOKEN, AES_KEY, APP_ID, ENTITY_PUSH.format(encoding="UTF-16").encode("utf-16"))
        assert post(*inner_utf16).status_code == 400
        assert written(p) == before
        assert post(params, body).text == "success"
    with p.engine.connect() as conn:
        stored = conn.execute(sa.select(inbound_messages.c.body, inbound_messages.c.customer_id)).all()
    assert stored == [("信用卡账单有误", "w2")]


def test_an_encrypted_push_without_safe_mode_configured_is_refused(pipeline: Pipeline) -> None:
    p = pipeline
    with serve(p) as web:
        params, body = safe_mode(TOKEN, AES_KEY, APP_ID, text_push("x", "21"))
        answer = requests.post(web.url("/webhooks/wechat"), params=params, data=body, timeout=10)
        assert answer.status_code == 403 and "OUTREACH_WECHAT_AES_KEY" in answer.text
