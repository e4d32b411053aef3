package workload

// vocabulary is the filler of synthetic prompts: common four-letter English
// words, each a single token (with its leading space) in the usual BPE
// vocabularies, so a prompt's token count is close to linear in its words.
var vocabulary = [...]string{
	"time", "year", "good", "work", "life", "hand", "part", "area", "week", "case",
	"fact", "home", "room", "mind", "kind", "side", "head", "book", "word", "city",
	"line", "name", "team", "game", "rule", "form", "body", "face", "door", "idea",
	"fire", "news", "road", "town", "food", "plan", "test", "deal", "land", "rate",
	"love", "bank", "hour", "data", "wall", "goal", "girl", "baby", "tree", "card",
	"list", "club", "film", "page", "shop", "wind", "rain", "snow", "star", "moon",
	"fish", "bird", "farm", "ship", "boat", "king", "song", "note", "dark", "cold",
	"warm", "fast", "slow", "long", "high", "deep", "easy", "hard", "real", "true",
	"open", "free", "full", "late", "next", "last", "best", "main", "sure", "able",
	"make", "take", "come", "give", "find", "tell", "call", "keep", "help", "talk",
	"turn", "move", "play", "live", "hold", "show", "hear", "lead", "meet", "stay",
	"pass", "sell", "send", "wait", "walk", "read", "lose", "pull", "push", "grow",
	"gate", "east", "west", "gold", "iron", "salt", "milk", "rice", "corn", "wood",
}
