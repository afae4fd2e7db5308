"""dispatch's people: accounts, the leads' phone directory, sign-in and sessions, composed once
for the bootstrap (HTTP blueprints, the handler that follows org changes, the session check)."""
from __future__ import annotations

from shared.config import setting

from .accounts import Accounts
from .accounts_api import build_accounts_blueprint
from .case_links import HANDLED as LINK_EVENTS, CaseLinks
from .lead_directory import LeadDirectory
from .sessions import Sessions
from .signin import SignIn
from .signin_api import build_signin_blueprint
from .wecom_oauth import WeComOAuth, parse_config

HANDLES = frozenset({"org.contacts_changed"}) | LINK_EVENTS


class People:
    def __init__(self, ctx, org, desk):
        settings, secret = ctx.settings, ctx.settings.secret
        self.desk = desk
        self.accounts = Accounts(ctx.store, ctx.clock, secret)
        self.directory = LeadDirectory(ctx.store, org, secret)
        self.sessions = Sessions(ctx.store, ctx.clock, ctx.waker, ctx.issuer, secret, org,
                                 float(setting(settings, "SANZHANG_SESSION_HOURS")))
        self.signin = SignIn(ctx.store, ctx.clock, ctx.waker, secret=secret, accounts=self.accounts,
                             directory=self.directory, sessions=self.sessions,
                             address_limit=int(setting(settings, "SANZHANG_SIGNIN_ADDRESS_LIMIT")))
        self.links = CaseLinks(ctx.store, secret, desk)
        self.wecom = WeComOAuth(parse_config(setting(settings, "SANZHANG_WECOM_OAUTH")),
                                setting(settings, "SANZHANG_WECOM_OAUTH_ENDPOINT"), ctx.clock)
        self.cookie_secure = setting(settings, "SANZHANG_COOKIE_SECURE") not in ("0", "false", "no")

    def blueprints(self) -> list:
        from .pages_api import build_pages
        from .wecom_api import build_wecom_pages

        return [build_signin_blueprint(self.signin, self.sessions),
                build_accounts_blueprint(self.accounts, self.sessions),
                build_pages(self), build_wecom_pages(self)]

    def handlers(self) -> dict:
        return {"org.contacts_changed": self.on_org_changed, **self.links.handlers()}

    def on_org_changed(self, event: dict) -> None:
        """A roster import, a red card or a filled post: the phone directory follows the org, and a
        lead who no longer holds the post loses every session (the other services hear it)."""
        township = event["township"]
        self.directory.rebuild(township)
        self.sessions.reconcile(township)

    @property
    def repos(self) -> list:
        return [self.sessions.sessions, self.signin.challenges]
