#!/usr/bin/env bash
# testdata/streams/capture.sh: recreates the corpus's transcripts from
# running engines (the capture tool, internal/transcript/cmd/capture) and
# from the recordings in the engines' own repositories
# (internal/transcript/cmd/fromevents). Each part runs when its variables
# are set, and writes into OUT (default: this folder):
#
#   OLLAMA_URL=http://127.0.0.1:11434          ollama serving the models
#                                              tiny and eos (see docs/streams.md)
#   LLAMA_URL=http://127.0.0.1:8080            llama-server with tiny.gguf, -np 8 -c 8192
#   LLAMA_EOS_URL=http://127.0.0.1:8081        llama-server with eos.gguf, -np 2 -c 2048
#   TGI_REPO=path/to/text-generation-inference a clone of huggingface/text-generation-inference
#
# The models: go run ./internal/gguf/cmd/gguf-llama -o tiny.gguf -embd 512
# -layers 8 -ff 1536 -heads 8 -ctx 4096 -type f16 -seed 1, and the same
# with -eos-bias 3 for eos.gguf (a reachable end-of-sequence token).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${OUT:-$here}
cd "$root"
capture() { go run ./internal/transcript/cmd/capture "$@"; }
tiny_model='go run ./internal/gguf/cmd/gguf-llama -o tiny.gguf -embd 512 -layers 8 -ff 1536 -heads 8 -ctx 4096 -type f16 -seed 1'
eos_model="$tiny_model -eos-bias 3 (as eos.gguf)"

if [ -n "${OLLAMA_URL:-}" ]; then
  mkdir -p "$out/ollama"
  v=$(curl -sf "$OLLAMA_URL/api/version" | sed 's/.*"version":"\([^"]*\)".*/\1/')
  srv="ollama serve (OLLAMA_NUM_PARALLEL=2 or more, OLLAMA_KEEP_ALIVE=-1), models created from $tiny_model and $eos_model with PARAMETER num_thread 1, num_ctx 1024"
  u="$OLLAMA_URL/v1/chat/completions"
  capture -url "$u" -model tiny -max-tokens 16 -engine ollama -version "$v" -server-command "$srv" -o "$out/ollama/length" \
    -note "no role-only chunk: every content delta carries the role; the finish chunk's delta is the role and empty content; usage only in a final frame; the connection stays open"
  capture -url "$u" -model eos -prompt "What is a cat?" -max-tokens 64 -engine ollama -version "$v" -server-command "$srv" -o "$out/ollama/natural-stop" \
    -note "a natural stop: finish_reason stop"
  capture -url "$u" -model tiny -prompt "SALT request 3 word word word word word word word word word word word word word word word word word word word word" \
    -max-tokens 96 -engine ollama -version "$v" -server-command "$srv" -o "$out/ollama/repeat-abort" \
    -note "temperature 0 on a repetitive prompt: ollama's token-repeat limit ends the prediction, and the body just ends, cleanly, with no finish_reason, no usage and no [DONE]"
  capture -url "$u" -model nosuchmodel -max-tokens 16 -engine ollama -version "$v" -server-command "$srv" -o "$out/ollama/model-not-found" \
    -note "a model the server does not have: HTTP 404 with an OpenAI error object"
fi

if [ -n "${LLAMA_URL:-}" ]; then
  mkdir -p "$out/llama-server"
  v=${LLAMA_VERSION:-unknown}
  srv="llama-server -m tiny.gguf --host 127.0.0.1 -np 8 -t 1 -c 8192 --no-webui --metrics; model: $tiny_model"
  u="$LLAMA_URL/v1/chat/completions"
  capture -url "$u" -model tiny -max-tokens 16 -engine llama-server -version "$v" -server-command "$srv" -o "$out/llama-server/length" \
    -note "the head arrives before the first token; the role chunk (content null) comes in the first token's chunk" \
    -note "Keep-Alive: timeout=5, max=100 in the head, yet the server closes the connection right after the stream"
  long=$(printf 'the sea and the sky and the land %.0s' $(seq 20))
  capture -url "$u" -model tiny -prompt "A prompt long enough to share: $long" -max-tokens 8 -engine llama-server -version "$v" -server-command "$srv" -o "$out/.warm" >/dev/null
  rm -f "$out/.warm.jsonl" "$out/.warm.meta.json"
  capture -url "$u" -model tiny -prompt "A prompt long enough to share: $long" -max-tokens 8 -engine llama-server -version "$v" -server-command "$srv" -o "$out/llama-server/cached-prompt" \
    -note "the same prompt sent once right before (not in this transcript): usage.prompt_tokens_details.cached_tokens reports the prefix cache's hit"
  words=$(printf 'word %.0s' $(seq 1500))
  capture -url "$u" -model tiny -prompt "$words" -max-tokens 16 -engine llama-server -version "$v" -server-command "$srv" -o "$out/llama-server/context-exceeded" \
    -note "a prompt longer than a slot's context: HTTP 400 with an OpenAI error object; the head says Connection: close, yet the connection stays open"
fi

if [ -n "${LLAMA_EOS_URL:-}" ]; then
  mkdir -p "$out/llama-server"
  v=${LLAMA_VERSION:-unknown}
  srv="llama-server -m eos.gguf --host 127.0.0.1 -np 2 -t 1 -c 2048 --no-webui; model: $eos_model"
  u="$LLAMA_EOS_URL/v1/chat/completions"
  capture -url "$u" -model eos -prompt "What is a cat?" -max-tokens 64 -engine llama-server -version "$v" -server-command "$srv" -o "$out/llama-server/natural-stop" \
    -note "a natural stop: finish_reason stop, and usage.completion_tokens counts the end-of-sequence token, which is never sent (one more than the content chunks)"
  capture -url "$u" -model eos -prompt "What is a cat?" -max-tokens 24 -profile vllm -engine llama-server -version "$v" -server-command "$srv" -o "$out/llama-server/ignore-eos" \
    -note "vLLM's length fields (min_tokens, ignore_eos) and continuous_usage_stats sent to llama-server: it honours ignore_eos, and reports usage at the end only"
fi

if [ -n "${TGI_REPO:-}" ]; then
  mkdir -p "$out/tgi"
  done_src="router/src/server.rs:1244 (Event::default().data(\"[DONE]\")) at $(git -C "$TGI_REPO" rev-parse HEAD)"
  tgi() { # NAME COMMIT PATH VERSION REQUEST NOTE...
    local name=$1 commit=$2 path=$3 version=$4 request=$5; shift 5
    local tmp; tmp=$(mktemp)
    git -C "$TGI_REPO" show "$commit:$path" >"$tmp"
    local notes=(); for n in "$@"; do notes+=(-note "$n"); done
    go run ./internal/transcript/cmd/fromevents -in "$tmp" -engine tgi -version "$version" -model meta-llama/Llama-3.1-8B-Instruct \
      -repository huggingface/text-generation-inference -path "$path" -commit "$commit" -done -done-source "$done_src" \
      -request "$request" "${notes[@]}" -o "$out/tgi/$name"
    rm -f "$tmp"
  }
  tgi usage-finish-in-last-token dc5f05f8e6ad170bc58e48632b137572268eab25 \
    integration-tests/models/__snapshots__/test_completion_prompts/test_flash_llama_completion_stream_usage.json 3.1.2-dev0 \
    "chat completion, What is Deep Learning?, max_tokens 10, temperature 0, stream_options.include_usage (integration-tests/models/test_completion_prompts.py, test_flash_llama_completion_stream_usage), parsed by huggingface_hub's InferenceClient" \
    "no role-only chunk: every delta carries the role; the last token arrives in the chunk with finish_reason length; usage in a final frame with choices []" \
    "the objects are as huggingface_hub parsed them: fields it knows and the server omitted show as null (tool_calls, logprobs)"
  tgi tool-call-deltas f74c36fe0dbd3260ec28a3a0b208a21b8618ccb1 \
    integration-tests/models/__snapshots__/test_tools_llama/test_flash_llama_grammar_tools_choice_stream.json 3.1.2-dev0 \
    "chat completion with tools and tool_choice get_current_weather, max_tokens 100, seed 1, temperature 0, no usage asked (integration-tests/models/test_tools_llama.py, test_flash_llama_grammar_tools_choice_stream)" \
    "tool-call deltas only: content null in every delta, arguments streamed piece by piece; no chunk has a finish_reason and there is no usage"
fi
