# The anchor of ci/bench/bench_proxy.py: behaviour deliberately unchanged, bugs included (an error
# returns 200 with no body; a new ClientSession per leg). Needs quart and aiohttp (the dev extra).
# ruff: noqa
"""The seed's proxy_server.py (Mooncake's vLLM V0 disaggregated serving demo,
https://kvcache-ai.github.io/Mooncake/getting_started/examples/vllm-integration/vllm-integration-v0.2.html), unchanged in
behaviour, with its hard-coded addresses read from the environment so it can run beside kvtest's proxy as the
baseline of a side-by-side benchmark. Needs quart and aiohttp.

    PREFILL_URL=http://127.0.0.1:8100 DECODE_URL=http://127.0.0.1:8200 PORT=8000 python seed_proxy.py
"""

import os

import aiohttp
from quart import Quart, make_response, request

AIOHTTP_TIMEOUT = aiohttp.ClientTimeout(total=6 * 60 * 60)
PREFILL_URL = os.environ.get("PREFILL_URL", "http://localhost:8100")
DECODE_URL = os.environ.get("DECODE_URL", "http://localhost:8200")

app = Quart(__name__)


async def forward_request(url, data):
    async with aiohttp.ClientSession(timeout=AIOHTTP_TIMEOUT) as session:
        headers = {"Authorization": f"Bearer {os.environ.get('OPENAI_API_KEY')}"}
        async with session.post(url=url, json=data, headers=headers) as response:
            if response.status == 200:
                async for chunk_bytes in response.content.iter_chunked(1024):
                    yield chunk_bytes


@app.route("/v1/completions", methods=["POST"])
async def handle_request():
    try:
        original_request_data = await request.get_json()
        prefill_request = original_request_data.copy()
        prefill_request["max_tokens"] = 1
        async for _ in forward_request(PREFILL_URL + "/v1/completions", prefill_request):
            continue
        generator = forward_request(DECODE_URL + "/v1/completions", original_request_data)
        response = await make_response(generator)
        response.timeout = None
        return response
    except Exception as e:
        import sys
        import traceback

        exc_info = sys.exc_info()
        print("Error occurred in disagg prefill proxy server")
        print(e)
        print("".join(traceback.format_exception(*exc_info)))


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
