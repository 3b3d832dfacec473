"""Model output is text: markup in it is shown, never executed."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from playwright.sync_api import Browser, expect

from chatbot.service import create_app as create_chat_app
from chatbot.settings import ChatSettings
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from tests.e2e.conftest import signed_in_page, watch
from tests.live import serve

PAYLOAD = (
    "Here you go <script>window.__xss = 'script'</script>\n"
    '<img src="x" onerror="window.__xss = \'img\'">\n'
    "- [click me](javascript:window.__xss='link') and **bold** and `<b>code</b>`\n"
    '<a href="#" onclick="window.__xss=\'a\'">anchor</a> <svg onload="window.__xss=\'svg\'"></svg>'
)


class HostileModel(BaseChatModel):
    """Answers every message with markup that would run if it were rendered as HTML."""

    @property
    def _llm_type(self) -> str:
        return "hostile"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:  # fmt: skip
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=PAYLOAD))])


def test_model_output_cannot_run_script(browser: Browser, chat_settings: ChatSettings) -> None:
    token = LocalTokenIssuer(chat_settings).issue("alice", Role.TENANT, ["acme"])
    with serve(create_chat_app(chat_settings, model=HostileModel())) as url:
        context, page = signed_in_page(browser, token)
        errors = watch(page)
        page.goto(f"{url}/dashboard")
        box = page.locator("aipress-chat textarea")
        box.fill("hello")
        box.press("Enter")
        reply = page.locator("aipress-chat .msg.assistant").last
        expect(reply).to_contain_text("window.__xss = 'script'")  # shown as text
        expect(page.locator("aipress-chat .send")).to_be_enabled()
        assert page.evaluate("window.__xss") is None
        chat = page.locator("aipress-chat")
        for tag in ("script", "img", "svg", "a[onclick]", "[onerror]", "[onload]"):
            expect(chat.locator(f".log {tag}")).to_have_count(0)
        assert reply.locator("a").count() == 0  # the javascript: link stayed text
        expect(reply.locator("strong")).to_have_text("bold")
        expect(reply.locator("code")).to_have_text("<b>code</b>")
        assert errors == []
        context.close()
