package daemon

import (
	"net"
	"net/http"
	"net/http/httptest"
)

func httptestRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func newRequest(method, uri, host string) *http.Request {
	r := httptest.NewRequest(method, uri, nil)
	r.Host = host
	return r
}

type netConn = net.Conn

var dialer net.Dialer
