// A stand-in for chromedp with its module path.
module github.com/chromedp/chromedp

go 1.26
