package issuer

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/acme"
)

// ErrEABRequired means the CA requires external account binding and
// Config.EABKID / Config.EABHMAC are not set.
var ErrEABRequired = errors.New("issuer: the CA requires external account binding: set Config.EABKID and Config.EABHMAC")

// ErrTOSNotAccepted means the CA has terms of service and Config.AcceptTOS
// is false.
var ErrTOSNotAccepted = errors.New("issuer: the CA requires agreeing to its terms of service: set Config.AcceptTOS")

// certError is an error of one certificate's attempt: "issuer: <name>:
// <cause>", with the cause's own "issuer: " prefix dropped so the package
// is named once.
type certError struct {
	name string
	err  error
}

func (e *certError) Error() string {
	return "issuer: " + e.name + ": " + strings.TrimPrefix(e.err.Error(), "issuer: ")
}

func (e *certError) Unwrap() error { return e.err }

func errForCert(name string, err error) error { return &certError{name: name, err: err} }

// IsPermanent reports whether err (from Obtain, for example) holds a
// problem no retry can fix: a *FieldError the configuration must change
// for (terms not accepted, EAB required or rejected, a profile the CA does
// not offer, a contact it refuses).
func IsPermanent(err error) bool {
	var fe *FieldError
	return errors.As(err, &fe)
}

// registrationError classifies the CA's answer to a new-account request:
// the problems that name a setting become a *FieldError, others are
// returned wrapped.
func (m *Manager) registrationError(err error) error {
	var ae *acme.Error
	if !errors.As(err, &ae) {
		return fmt.Errorf("issuer: register account: %w", err)
	}
	detail := ae.Detail
	switch t := ae.ProblemType; {
	case strings.HasSuffix(t, ":invalidContact"), strings.HasSuffix(t, ":unsupportedContact"):
		return &FieldError{Field: "Email", Msg: fmt.Sprintf("the CA refuses the contact %q: %s", m.cfg.Email, detail), Err: err}
	case strings.HasSuffix(t, ":externalAccountRequired"):
		return &FieldError{Field: "EABKID", Msg: "the CA requires external account binding: set Config.EABKID and Config.EABHMAC (" + detail + ")", Err: ErrEABRequired}
	case m.eab != nil && strings.HasSuffix(t, ":unauthorized"):
		return &FieldError{Field: "EABKID", Msg: "the CA rejected the external account binding (Config.EABKID, Config.EABHMAC): " + detail, Err: err}
	case strings.HasSuffix(t, ":userActionRequired"):
		return &FieldError{Field: "AcceptTOS", Msg: "the CA requires agreeing to its (new) terms of service: set Config.AcceptTOS (" + detail + ")", Err: err}
	}
	return fmt.Errorf("issuer: register account: %w", err)
}
