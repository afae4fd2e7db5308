"""Local fakes of external services, for tests. See providers.py."""
from .providers import (  # noqa: F401
    FakeAliyunSms, FakeProvider, FakeTencentSms, FakeWeChatMp, FakeWeCom, RecordedRequest,
    no_proxy_opener,
)
