"""Outbound channels for notify: console (always), Alibaba / Tencent SMS, WeCom, WeChat MP.

Which channels exist is decided by the environment alone (see each adapter's from_env);
an unconfigured provider is simply absent, so the embedded default is console only.
"""
from __future__ import annotations

from typing import Mapping

from .aliyun_sms import AliyunSmsChannel, AliyunSmsSettings
from .base import (
    Channel, Clock, NonceFn, OutboundMessage, PermanentSendError, RetryableSendError,
    SendError, SendResult, new_uuid, system_clock,
)
from .console import ConsoleChannel, LogSink
from .tencent_sms import TencentSmsChannel, TencentSmsSettings
from .wechat_mp import WeChatMpChannel, WeChatMpSettings
from .wecom import WeComChannel, WeComSettings

__all__ = [
    "Channel", "OutboundMessage", "SendResult", "SendError", "RetryableSendError",
    "PermanentSendError", "ConsoleChannel", "AliyunSmsChannel", "AliyunSmsSettings",
    "TencentSmsChannel", "TencentSmsSettings", "WeComChannel", "WeComSettings",
    "WeChatMpChannel", "WeChatMpSettings", "build_channels",
]

_PROVIDERS = (AliyunSmsChannel, TencentSmsChannel, WeComChannel, WeChatMpChannel)


def build_channels(environ: Mapping[str, str], now: Clock = system_clock,
                   log_sink: LogSink | None = None, *, new_nonce: NonceFn = new_uuid,
                   opener=None) -> dict[str, Channel]:
    """Every configured channel by name. Raises ValueError on half-configured providers."""
    channels: dict[str, Channel] = {"console": ConsoleChannel(log_sink, now=now)}
    for cls in _PROVIDERS:
        channel = cls.from_env(environ, now=now, new_nonce=new_nonce, opener=opener)
        if channel is not None:
            channels[channel.name] = channel
    return channels
