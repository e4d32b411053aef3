package fake

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOpenAISDK drives the server with the official OpenAI Go SDK: a client
// written by others must accept the stream and the non-streamed answer.
func TestOpenAISDK(t *testing.T) {
	for _, name := range []string{"engine", "firehose"} {
		t.Run(name, func(t *testing.T) {
			cfg := fastCfg(t)
			if name == "firehose" {
				cfg = firehoseCfg(t)
			}
			_, ts := newTest(t, cfg, Options{Model: "sdk-model"})
			client := openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithAPIKey("test-key"), option.WithMaxRetries(0))
			params := openai.ChatCompletionNewParams{
				Model:         "sdk-model",
				Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")},
				MaxTokens:     openai.Int(12),
				StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
			}
			ctx := context.Background()
			stream := client.Chat.Completions.NewStreaming(ctx, params, option.WithJSONSet("ignore_eos", true))
			var content strings.Builder
			var finish string
			var usage openai.CompletionUsage
			roles := 0
			for stream.Next() {
				c := stream.Current()
				if c.Usage.TotalTokens > 0 {
					usage = c.Usage
				}
				for _, ch := range c.Choices {
					if ch.Delta.Role != "" {
						roles++
						assert.Equal(t, "assistant", ch.Delta.Role)
					}
					content.WriteString(ch.Delta.Content)
					if ch.FinishReason != "" {
						finish = ch.FinishReason
					}
				}
			}
			require.NoError(t, stream.Err())
			assert.Equal(t, 1, roles)
			assert.Len(t, strings.Fields(content.String()), 12)
			assert.Equal(t, "length", finish)
			assert.EqualValues(t, 12, usage.CompletionTokens)
			assert.EqualValues(t, EstimatePromptTokens([]Message{{Role: "user", Content: "Say hello"}}), usage.PromptTokens)
			assert.Equal(t, usage.PromptTokens+usage.CompletionTokens, usage.TotalTokens)

			// Non-streaming.
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
			params.MaxTokens = openai.Int(5)
			res, err := client.Chat.Completions.New(ctx, params, option.WithJSONSet("min_tokens", 5))
			require.NoError(t, err)
			require.Len(t, res.Choices, 1)
			assert.Len(t, strings.Fields(res.Choices[0].Message.Content), 5)
			assert.Equal(t, "length", res.Choices[0].FinishReason)
			assert.EqualValues(t, 5, res.Usage.CompletionTokens)

			// Legacy completions.
			comp, err := client.Completions.New(ctx, openai.CompletionNewParams{
				Model:     "sdk-model",
				Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("12345678")},
				MaxTokens: openai.Int(3),
			}, option.WithJSONSet("ignore_eos", true))
			require.NoError(t, err)
			assert.Len(t, strings.Fields(comp.Choices[0].Text), 3)
			assert.EqualValues(t, 2, comp.Usage.PromptTokens)

			// An unknown model is an SDK error with status 404.
			params.Model = "other"
			_, err = client.Chat.Completions.New(ctx, params)
			var apiErr *openai.Error
			require.True(t, errors.As(err, &apiErr), "%v", err)
			assert.Equal(t, 404, apiErr.StatusCode)
		})
	}
}
