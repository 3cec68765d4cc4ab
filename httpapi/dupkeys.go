package httpapi

import (
	"bytes"
	"encoding/json"
	"strings"
)

// duplicateKey finds a name given twice in one JSON object of body, names
// compared as encoding/json compares them to a struct's fields (without
// regard to case), so that what a handler acts on (the last of the two) is
// never ambiguous in what is recorded or logged. It answers "" for a body
// with none, or one that is not JSON (the decoder reports that).
func duplicateKey(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &frame{object: true, keys: map[string]bool{}, key: true})
			case '[':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.object && top.key {
				folded := strings.ToLower(strings.ToUpper(v))
				if top.keys[folded] {
					return v
				}
				top.keys[folded] = true
				top.key = false
				continue
			}
			if top != nil && top.object {
				top.key = true
			}
		default:
			if top != nil && top.object {
				top.key = true
			}
		}
	}
}
