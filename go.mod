module github.com/bitsremote/bitsremote

go 1.26.0

require github.com/beevik/etree v1.8.1 // indirect
