package cli

import (
	"encoding/json"
	"fmt"
	"io"
)

// printResult prints one command's result: data as a single JSON object in
// JSON mode, the text line otherwise.
func (f *Factory) printResult(data any, text string) error {
	if f.beforeOutput != nil {
		f.beforeOutput()
	}
	if f.JSON() {
		return writeJSON(f.IO.Out, data)
	}
	_, err := fmt.Fprintln(f.IO.Out, text)
	return err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // output is for jq and people, not HTML
	return enc.Encode(v)
}
