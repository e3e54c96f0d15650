"""The web desk: editors' queue, exact previews, decisions, history and health in a browser,
served under /desk by the bot's own HTTP endpoint (issue 17)."""

from bot.webdesk.settings import DeskConfig

__all__ = ["DeskConfig"]
