package cli

import (
	"image"
	"image/color"
	"strings"
	"testing"

	qr "github.com/piglig/go-qr"
)

// decodeQRText reads a QR code drawn by qrText back: each half block is two
// modules, drawn ones light.
func decodeQRText(t testing.TB, drawn string) string {
	t.Helper()
	var rows [][]bool
	for line := range strings.Lines(drawn) {
		line = strings.TrimSuffix(line, "\n")
		top, bottom := []bool{}, []bool{}
		for _, r := range line {
			switch r {
			case '\u2588':
				top, bottom = append(top, true), append(bottom, true)
			case '\u2580':
				top, bottom = append(top, true), append(bottom, false)
			case '\u2584':
				top, bottom = append(top, false), append(bottom, true)
			case ' ':
				top, bottom = append(top, false), append(bottom, false)
			default:
				t.Fatalf("the QR code holds %q", r)
			}
		}
		rows = append(rows, top, bottom)
	}
	const px = 4
	img := image.NewGray(image.Rect(0, 0, len(rows[0])*px, len(rows)*px))
	for y, row := range rows {
		for x, light := range row {
			c := color.Gray{}
			if light {
				c.Y = 255
			}
			for dy := range px {
				for dx := range px {
					img.SetGray(x*px+dx, y*px+dy, c)
				}
			}
		}
	}
	text, err := qr.Decode(img)
	if err != nil {
		t.Fatalf("decode the QR code:\n%s\n%v", drawn, err)
	}
	return text
}

// TestQRText: what --qr draws decodes to the link, for links as long as a
// console's and with the characters one holds.
func TestQRText(t *testing.T) {
	for _, text := range []string{
		"https://127.0.0.1:8443/",
		"https://[fe80::1%25eth0]:8443/#d=" + strings.Repeat("eyJhbGciOiJFZERTQSJ9.", 40) + "&k=" + strings.Repeat("A_-z", 11),
	} {
		drawn, err := qrText(text)
		if err != nil {
			t.Fatal(err)
		}
		if got := decodeQRText(t, drawn); got != text {
			t.Errorf("the QR code of %q reads %q", text, got)
		}
	}
	if _, err := qrText(strings.Repeat("x", 8000)); err == nil {
		t.Error("a text too long for any QR code was drawn")
	}
}
