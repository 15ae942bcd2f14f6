"""Who writes what: customers with WeChat openids, and the signed WeChat XML pushes they send — complaints
(every tenth redelivered, as WeChat does), plain messages that match no trigger, and a warm-up of each."""

from __future__ import annotations

import csv
import itertools
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlencode

from bench.http_load import Post
from outreach.web.wechat_hooks import PATH as WECHAT_PATH
from outreach.web.wechat_hooks import signature_for
from tests.wechat_server import new_openid

OUR_ACCOUNT = "gh_bank0123456"
COMPLAINTS = (
    "我要投诉,信用卡被多扣款",
    "投诉:ATM吞卡",
    "I want to complain about the annual fee",
    "对服务很不满,要投诉",
)
PLAIN = ("你好,请问周六营业吗?", "谢谢", "What are your opening hours?", "我的信用卡额度是多少")
REDELIVER_EVERY = 10
# Warm-up before any clock starts: this many complaints and plain pushes from customers of their own, and every
# complaint's reply awaited (the workers have started, the WeChat token is cached, the code paths are loaded).
WARMUP = 10
_HEADERS = {"Content-Type": "text/xml"}
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = ("伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超")


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    openid: str


def write_people(path: Path, count: int) -> list[Person]:
    """`count` customers with WeChat openids, written as a customers CSV to import."""
    people = [
        Person(f"w{i:07d}", _SURNAMES[i % len(_SURNAMES)] + _GIVEN[(i // 7) % len(_GIVEN)], new_openid())
        for i in range(count)
    ]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "wechat_openid", "locale"])
        writer.writerows([p.id, p.name, p.openid, "zh-CN"] for p in people)
    return people


@dataclass(frozen=True)
class Push(Post):
    """A signed WeChat XML push from the customer `openid`."""

    openid: str
    complaint: bool
    redelivery: bool = False


@dataclass(frozen=True)
class Pushes:
    """Every push of a run, each customer writing once; a redelivery is placed right after its original."""

    warm_complaints: list[Push]
    warm_plain: list[Push]
    plain: list[Push]
    complaints: list[Push]

    @property
    def complainers(self) -> list[str]:
        """The openids of the measured complaints, one each."""
        return [p.openid for p in self.complaints if not p.redelivery]

    @property
    def redelivered(self) -> int:
        return sum(1 for p in self.complaints if p.redelivery)

    @property
    def inbound_rows(self) -> int:
        """The inbound messages the app must file: one per push, a redelivery being the same message."""
        return len(self.warm_complaints) + len(self.warm_plain) + len(self.plain) + len(self.complainers)


def customers_needed(plain: int, complaints: int) -> int:
    return 2 * WARMUP + plain + complaints


def sign_pushes(token: str, people: list[Person], plain: int, complaints: int) -> Pushes:
    """The pushes, signed with the app's WeChat token before any clock starts."""
    writers = iter(people)
    msg_ids = itertools.count(24_680_135_792_468_001)

    def push(texts: tuple[str, ...], i: int, complaint: bool) -> Push:
        return _push(token, next(writers), texts[i % len(texts)], str(next(msg_ids)), complaint)

    warm_complaints = [push(COMPLAINTS, i, True) for i in range(WARMUP)]
    warm_plain = [push(PLAIN, i, False) for i in range(WARMUP)]
    plain_pushes = [push(PLAIN, i, False) for i in range(plain)]
    complaint_pushes: list[Push] = []
    for i in range(complaints):
        p = push(COMPLAINTS, i, True)
        complaint_pushes.append(p)
        if i % REDELIVER_EVERY == 0:  # WeChat pushes again (same MsgId) when it thinks we did not answer
            complaint_pushes.append(replace(p, redelivery=True))
    return Pushes(warm_complaints, warm_plain, plain_pushes, complaint_pushes)


def _push(token: str, person: Person, text: str, msg_id: str, complaint: bool) -> Push:
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
    query = urlencode({"signature": signature_for(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce})
    fields = {"ToUserName": OUR_ACCOUNT, "FromUserName": person.openid, "CreateTime": timestamp, "MsgType": "text",
              "Content": text, "MsgId": msg_id}  # fmt: skip
    body = "<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()) + "</xml>"
    return Push(f"{WECHAT_PATH}?{query}", body.encode("utf-8"), _HEADERS, person.openid, complaint)
