package engines

import (
	"encoding/json"
	"errors"
	"strings"
)

// completionsURL is the /v1/completions URL next to a chat-completions
// URL; any other URL is the user's own completions endpoint, used as given.
func completionsURL(chatURL string) string {
	if base, ok := strings.CutSuffix(chatURL, chatCompletionsPath); ok {
		return base + "/completions"
	}
	return chatURL
}

// URL is where the client sends requests: the engine's URL, or for the
// Completions endpoint the completions URL next to it.
func (c *Client) URL() string { return c.url }

// completionBody builds a /v1/completions body: the same length, usage and
// profile fields as a chat body, with a prompt in place of the messages.
func (c *Client) completionBody(req Request) ([]byte, error) {
	prompt := req.Prompt
	if prompt == "" {
		parts := make([]string, 0, len(req.Messages))
		for _, m := range req.Messages {
			parts = append(parts, m.Content)
		}
		prompt = strings.Join(parts, "\n\n")
	}
	if prompt == "" {
		return nil, errors.New("request has no prompt (and no messages to make one of)")
	}
	g, err := c.generation(req.MaxTokens)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		generation
		Prompt string `json:"prompt"`
	}{g, prompt})
}

// answerChunk is the part of an output event Request.Answer keeps.
type answerChunk struct {
	Choices []struct {
		Delta struct {
			Content *string `json:"content"`
		} `json:"delta"`
		Text *string `json:"text"`
	} `json:"choices"`
}

// appendAnswer appends the output text of one event (already validated by
// parseChunk) to b: every choice's delta content (chat) or text
// (completions).
func appendAnswer(b *strings.Builder, data []byte) {
	var ch answerChunk
	if json.Unmarshal(data, &ch) != nil {
		return // parseChunk accepted it; a shape it tolerates is not text
	}
	for _, c := range ch.Choices {
		if c.Delta.Content != nil {
			b.WriteString(*c.Delta.Content)
		}
		if c.Text != nil {
			b.WriteString(*c.Text)
		}
	}
}
