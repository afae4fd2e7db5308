"""What the 积分超市 endpoints accept (unknown fields refused) and return."""
from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from shared.events import NOT_BLANK

from .schemas import DAY_OR_TIME

NAME = [validate.Length(min=1, max=40), NOT_BLANK]
PRICE = validate.Range(min=1, max=100_000, error="积分价格须在 1 到 100000 之间")
STOCK = validate.Range(min=0, max=100_000, error="库存须在 0 到 100000 之间")
KEY = validate.Regexp(r"^[A-Za-z0-9_\-:.]{8,64}$", error="兑换编号须为8–64位字母、数字或 _-:.")


class _In(Schema):
    class Meta:
        unknown = RAISE


class RewardIn(_In):
    name = fields.String(required=True, validate=NAME, metadata={"example": "洗衣液（2kg）"})
    price = fields.Integer(required=True, validate=PRICE, metadata={"description": "所需积分", "example": 30})
    stock = fields.Integer(required=True, validate=STOCK, metadata={"example": 50})
    active = fields.Boolean(load_default=True, metadata={"description": "是否上架"})
    description = fields.String(validate=validate.Length(max=200))


class RewardPatch(_In):
    name = fields.String(validate=NAME)
    price = fields.Integer(validate=PRICE)
    stock = fields.Integer(validate=STOCK)
    active = fields.Boolean()
    description = fields.String(validate=validate.Length(max=200))


class ExchangeIn(_In):
    item_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    quantity = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100, error="数量须在 1 到 100 之间"))
    key = fields.String(required=True, validate=KEY,
                        metadata={"description": "兑换编号（客户端生成，重发同一编号不会重复扣分）",
                                  "example": "ex-20261102-0001"})
    note = fields.String(validate=validate.Length(min=1, max=200))


class StaffExchangeIn(ExchangeIn):
    unit_id = fields.String(required=True, validate=validate.Length(min=1, max=64),
                            metadata={"description": "为哪位三长登记兑换：其岗位（邻/组/片）的单位 id"})


class ReverseIn(_In):
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=200), NOT_BLANK],
                           metadata={"example": "商品质量问题，已退回"})


class ExchangesQuery(_In):
    unit_id = fields.String(validate=validate.Length(min=1, max=64), metadata={"description": "只看某岗位三长的兑换"})
    from_ = fields.String(data_key="from", validate=DAY_OR_TIME)
    to = fields.String(validate=DAY_OR_TIME)
    limit = fields.Integer(load_default=200, validate=validate.Range(min=1, max=1000))


class RewardOut(Schema):
    id = fields.String(attribute="_id")
    township = fields.String()
    name = fields.String()
    price = fields.Integer()
    stock = fields.Integer()
    active = fields.Boolean()
    description = fields.String(allow_none=True)
    updated_at = fields.String()


class ExchangeOut(Schema):
    id = fields.String(attribute="_id")
    key = fields.String()
    township = fields.String()
    lead_key = fields.String()
    unit_id = fields.String()
    unit_name = fields.String()
    lead_name = fields.String()
    item_id = fields.String()
    item_name = fields.String()
    price = fields.Integer()
    quantity = fields.Integer()
    points = fields.Float()
    status = fields.String(metadata={"description": "done 已兑换 / reversed 已撤销"})
    at = fields.String()
    by = fields.String()
    note = fields.String(allow_none=True)
    reversed_at = fields.String(allow_none=True)
    reversed_by = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


class PointsOut(Schema):
    lead_key = fields.String()
    earned = fields.Float(metadata={"description": "累计获得积分（台账中除兑换外的全部条目）"})
    spent = fields.Float(metadata={"description": "已兑换积分（撤销的已退回）"})
    balance = fields.Float(metadata={"description": "可用余额 = earned − spent"})
    exchanges = fields.List(fields.Nested(ExchangeOut))
