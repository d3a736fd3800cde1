package cli

import (
	"fmt"
	"strings"

	qr "github.com/piglig/go-qr"
)

// qrQuiet is the light border a QR code needs around it, in modules.
const qrQuiet = 4

// qrText draws text as a QR code (error correction level L: a screen is
// not a worn label) for a terminal, two rows of modules per line of half
// blocks. Light modules are drawn and dark ones left blank, so the code
// reads right on a terminal's dark background.
func qrText(text string) (string, error) {
	code, err := qr.EncodeText(text, qr.Low)
	if err != nil {
		return "", fmt.Errorf("make the QR code: %w", err)
	}
	n := code.Size() + 2*qrQuiet
	light := func(x, y int) bool {
		return y >= n || !code.Module(x-qrQuiet, y-qrQuiet)
	}
	var b strings.Builder
	for y := 0; y < n; y += 2 {
		for x := range n {
			switch top, bottom := light(x, y), light(x, y+1) && y+1 < n; {
			case top && bottom:
				b.WriteString("\u2588")
			case top:
				b.WriteString("\u2580")
			case bottom:
				b.WriteString("\u2584")
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}
