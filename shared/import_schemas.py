"""The contract every spreadsheet import shares (roster, contacts, responsibility matrix, knowledge
base): the query that names the file and asks for a dry run, and the preview's answer. One home, so
the `base` rule, its message and the preview's keys cannot drift between the services."""
from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

BASE_PATTERN = r"^[0-9a-f]{16}$"   # shared.domain.spreadsheet.content_base: 16 hex digits


class ImportQuery(Schema):
    class Meta:
        unknown = RAISE

    filename = fields.String(validate=validate.Regexp(r".+\.(xlsx|csv)$", error="文件名须以 .xlsx 或 .csv 结尾"),
                             metadata={"description": "以原始正文提交时的文件名"})
    dry_run = fields.Boolean(load_default=False, metadata={
        "description": "true：只预览将发生的变化（200），不写入任何数据；确认无误后去掉此参数再提交同一文件"})
    base = fields.String(validate=validate.Regexp(BASE_PATTERN, error="base 应为预览返回的16位标识"), metadata={
        "description": "可选：预览返回的 base。提交时带上，若预览之后数据已被修改则拒收（409），请重新预览"})


class ImportNoticeOut(Schema):
    row = fields.Integer(allow_none=True)
    column = fields.String(allow_none=True)
    message = fields.String()


class PreviewOut(Schema):
    """A dry run's answer; each import adds its scope (township or city) and says what `summary` counts."""
    dry_run = fields.Boolean()
    base = fields.String(metadata={"description": "提交时作为 base 参数带上，可确保提交的正是预览时的情况"})
    changed = fields.Boolean(metadata={"description": "false：与当前数据一致，提交也不会有任何更改"})
    summary = fields.Dict(keys=fields.String(), values=fields.Integer())
    changes = fields.Dict(keys=fields.String(), values=fields.List(fields.Dict()), metadata={
        "description": "各项的明细（电话脱敏）"})
    notices = fields.List(fields.Nested(ImportNoticeOut), metadata={
        "description": "读取时的提示：表头位置、未导入的合计/备注行、隐藏的行和列"})
