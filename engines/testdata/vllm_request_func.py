#!/usr/bin/env python3
"""vLLM's benchmark client, for measuring its CPU cost per token.

This is vLLM's chat request function and the driver around it as
`vllm bench serve` runs them, re-implemented step by step so that its CPU
cost can be measured against inferbench's on the same server
(engines/paced_bench_test.go). It is not vLLM's source text; it follows:

  vllm-project/vllm, vllm/benchmarks/lib/endpoint_request_func.py at
  commit 02cfb534df5674737558730b10f23d1b7aef9b7c:
  async_request_openai_chat_completions and StreamedResponseHandler;

  vllm-project/vllm, vllm/benchmarks/serve.py at commit
  009e6d4a1cd6ba3fb2a9fc00f4ec06f5297232a1: benchmark() (the
  aiohttp.TCPConnector and ClientSession settings, a semaphore of
  --max-concurrency around every request, all requests created as tasks
  at once for --request-rate inf, one ready-check request first) and
  main_async() (plain asyncio.run, no uvloop; the GC heap frozen before
  the run).

vLLM is Copyright contributors to the vLLM project, licensed under the
Apache License 2.0 (https://www.apache.org/licenses/LICENSE-2.0).

What a streamed chunk costs there, and therefore here:
  * aiohttp's response.content.iter_any() hands over each read's bytes;
  * the bytes are stripped, which removes an event's trailing blank line;
  * an incremental UTF-8 decoder turns them into text appended to a
    buffer, which is split on blank lines;
  * what is left in the buffer (every event, since the strip removed its
    blank line) is JSON-decoded once just to learn whether it is complete;
  * the message is JSON-decoded again to read choices[0].delta.content or
    usage.completion_tokens, with a time.perf_counter() stamp, the ITL
    list appended to and the generated text concatenated.

Not included (per request, not per token, or not per chunk): the tqdm
progress bar (as with --disable-tqdm) and calculate_metrics after the run.

Requires python3 with aiohttp (Debian: apt-get install python3-aiohttp;
elsewhere: pip install aiohttp). Prints one JSON object: requests,
errors, output_tokens (the sum of usage.completion_tokens), first_error.
"""
import argparse
import asyncio
import codecs
import gc
import json
import sys
import time
import traceback

import aiohttp


class StreamedResponseHandler:
    """Accumulates a stream's chunks into complete SSE messages."""

    def __init__(self):
        self.buffer = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def add_chunk(self, chunk_bytes):
        self.buffer += self._decoder.decode(chunk_bytes)
        messages = []
        while "\n\n" in self.buffer:
            message, self.buffer = self.buffer.split("\n\n", 1)
            message = message.strip()
            if message:
                messages.append(message)
        # A buffer left over may be a whole message whose blank line was
        # stripped off: it is one if it is [DONE] or parses as JSON.
        if self.buffer.startswith("data: "):
            rest = self.buffer.removeprefix("data: ").strip()
            if rest == "[DONE]":
                messages.append(self.buffer.strip())
                self.buffer = ""
            elif rest:
                try:
                    json.loads(rest)
                    messages.append(self.buffer.strip())
                    self.buffer = ""
                except json.JSONDecodeError:
                    pass  # incomplete: wait for more bytes
        return messages


class Output:
    """What the request function reports (vLLM's RequestFuncOutput)."""

    def __init__(self):
        self.generated_text = ""
        self.success = False
        self.latency = 0.0
        self.output_tokens = 0
        self.ttft = 0.0
        self.itl = []
        self.prompt_len = 0
        self.error = ""
        self.start_time = 0.0


async def request_chat(api_url, model, prompt, prompt_len, output_len, session):
    """One streamed chat completion, timed as vLLM's request function does."""
    payload = {
        "model": model,
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        "max_completion_tokens": output_len,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,  # set by vllm bench serve for the random dataset
    }
    headers = {"Content-Type": "application/json"}
    output = Output()
    output.prompt_len = prompt_len
    generated_text = ""
    st = time.perf_counter()
    output.start_time = st
    most_recent_timestamp = st
    try:
        async with session.post(url=api_url, json=payload, headers=headers) as response:
            if response.status == 200:
                first_chunk_received = False
                handler = StreamedResponseHandler()
                async for chunk_bytes in response.content.iter_any():
                    chunk_bytes = chunk_bytes.strip()
                    if not chunk_bytes:
                        continue
                    for message in handler.add_chunk(chunk_bytes):
                        if message.startswith(":"):
                            continue  # an SSE comment (a ping)
                        chunk = message.removeprefix("data: ")
                        if chunk == "[DONE]":
                            continue
                        timestamp = time.perf_counter()
                        data = json.loads(chunk)
                        if choices := data.get("choices"):
                            content = choices[0]["delta"].get("content")
                            if not first_chunk_received:
                                first_chunk_received = True
                                output.ttft = timestamp - st
                            else:
                                output.itl.append(timestamp - most_recent_timestamp)
                            generated_text += content or ""
                            most_recent_timestamp = timestamp
                        elif usage := data.get("usage"):
                            output.output_tokens = usage.get("completion_tokens")
                            if (pt := usage.get("prompt_tokens")) is not None:
                                output.prompt_len = pt
                output.generated_text = generated_text
                output.success = first_chunk_received
                if not first_chunk_received:
                    output.error = "Never received a valid chunk to calculate TTFT."
                output.latency = most_recent_timestamp - st
            else:
                output.error = response.reason or ""
    except Exception:
        output.success = False
        output.error = "".join(traceback.format_exception(*sys.exc_info()))
    return output


async def run(args):
    connector = aiohttp.TCPConnector(
        limit=args.max_concurrency,
        limit_per_host=args.max_concurrency,
        ttl_dns_cache=300,
        use_dns_cache=True,
        keepalive_timeout=60,
        enable_cleanup_closed=True,
        force_close=False,
        ssl=("https://" in args.url),
    )
    session = aiohttp.ClientSession(
        connector=connector,
        trust_env=True,
        timeout=aiohttp.ClientTimeout(total=6 * 60 * 60),
    )
    prompt = "word " * args.prompt_words
    try:
        # The ready check: one request before the run.
        test = await request_chat(args.url, args.model, prompt, args.prompt_words, args.max_tokens, session)
        if not test.success:
            return {"requests": 0, "errors": 1, "output_tokens": 0, "first_error": test.error}
        semaphore = asyncio.Semaphore(args.max_concurrency)

        async def limited(i):
            async with semaphore:
                return await request_chat(args.url, args.model, "request %d " % i + prompt,
                                          args.prompt_words, args.max_tokens, session)

        tasks = [asyncio.create_task(limited(i)) for i in range(args.num_prompts)]
        outputs = await asyncio.gather(*tasks)
    finally:
        await session.close()
    failed = [o for o in outputs if not o.success]
    return {
        "requests": len(outputs),
        "errors": len(failed),
        "output_tokens": sum(o.output_tokens or 0 for o in outputs if o.success),
        "first_error": failed[0].error if failed else "",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--url", required=True, help="the chat completions URL")
    ap.add_argument("--model", default="m")
    ap.add_argument("--max-concurrency", type=int, required=True)
    ap.add_argument("--num-prompts", type=int, required=True)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--prompt-words", type=int, default=4)
    args = ap.parse_args()
    if args.max_concurrency < 1 or args.num_prompts < 1:
        ap.error("--max-concurrency and --num-prompts must be at least 1")
    # vLLM freezes the GC heap before the run (freeze_gc_heap).
    gc.collect()
    gc.freeze()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
