"""A tiny Python MCP server (mcp==2.3.0 `MCPServer`) for portcullis-api's import and discovery tests
(a copy of portcullis-upstream's peer).

Usage: python_server.py --port N [--page-size N] [--json-response] [--auth] [--tag=ANY]

--page-size  answers tools/list in pages of N tools (with nextCursor), to prove the gateway
             follows every page.
--json-response  answers requests with application/json instead of an SSE stream.
--auth       requires a bearer token (`AuthSettings` + a token verifier that accepts only
             "notes-token"), so an unauthenticated client gets 401 + resource_metadata.
"""

import argparse

from mcp.server import MCPServer
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp_types import ListToolsResult, ToolAnnotations
from pydantic import AnyHttpUrl


class NotesVerifier(TokenVerifier):
    async def verify_token(self, token):
        if token == "notes-token":
            return AccessToken(token=token, client_id="gateway", scopes=["notes:read"])
        return None


class PagedServer(MCPServer):
    """MCPServer whose tools/list is split into pages of `page_size` tools."""

    page_size = 0

    async def _handle_list_tools(self, ctx, params):
        tools = await self.list_tools()
        if not self.page_size:
            return ListToolsResult(tools=tools)
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + self.page_size
        next_cursor = str(end) if end < len(tools) else None
        return ListToolsResult(tools=tools[start:end], next_cursor=next_cursor)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--page-size", type=int, default=0)
    parser.add_argument("--json-response", action="store_true")
    parser.add_argument("--auth", action="store_true")
    # Ignored: puts the test's temp dir in the command line for clean-up scripts.
    parser.add_argument("--tag", default="")
    args = parser.parse_args()

    options = {}
    if args.auth:
        options = dict(
            token_verifier=NotesVerifier(),
            auth=AuthSettings(
                # Nothing listens here: the tests only read the 401 and the metadata.
                issuer_url=AnyHttpUrl("http://127.0.0.1:9/"),
                resource_server_url=AnyHttpUrl(f"http://127.0.0.1:{args.port}/mcp"),
                required_scopes=["notes:read"],
            ),
        )
    server = PagedServer("Notes", version="1.0.0", **options)
    server.page_size = args.page_size

    @server.tool()
    def list_notes() -> list[str]:
        """Lists every note."""
        return ["Buy milk", "Ship the release"]

    @server.tool()
    def add_note(text: str) -> str:
        """Adds a note."""
        return text

    @server.tool()
    def delete_note(index: int) -> str:
        """Deletes a note by index."""
        return f"deleted {index}"

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, read_only_hint=False))
    def archive_notes() -> str:
        """Archives every note (annotated as destructive)."""
        return "archived"

    @server.tool()
    def get_dataset(name: str) -> str:
        """Reads a data set by name."""
        return name

    server.run(
        "streamable-http",
        host="127.0.0.1",
        port=args.port,
        json_response=args.json_response,
    )


if __name__ == "__main__":
    main()
