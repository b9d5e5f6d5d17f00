package vault

import (
	"errors"
	"fmt"
)

// Errors a vault operation returns. Test them with errors.Is.
var (
	// ErrLocked: the vault is locked; Unlock it first.
	ErrLocked = errors.New("vault: locked; unlock it with the mnemonic first")
	// ErrAlreadyUnlocked: Unlock on an unlocked vault. Lock it first to switch mnemonics.
	ErrAlreadyUnlocked = errors.New("vault: already unlocked; lock it before unlocking with another mnemonic")
	// ErrInvalidMnemonic: a phrase that is not a valid BIP39 English mnemonic. The
	// error is a *MnemonicError that says why.
	ErrInvalidMnemonic = errors.New("vault: invalid mnemonic")
	// ErrInvalidPath: a derivation path that does not parse, or that SLIP-0010 Ed25519
	// cannot derive. The error is a *PathError.
	ErrInvalidPath = errors.New("vault: invalid derivation path")
	// ErrNotHardened: a path with an unhardened index. SLIP-0010 Ed25519 derives
	// hardened children only. Always comes with ErrInvalidPath.
	ErrNotHardened = errors.New("vault: unhardened index (ed25519 derives hardened indices only; write 0' or 0h)")
	// ErrInvalidVersion: an encryption key version below 2 (version 1 is the legacy
	// PBKDF2 format, which the vault does not read).
	ErrInvalidVersion = errors.New("vault: invalid key version (versions start at 2)")
	// ErrInvalidBlob: an encrypted blob whose JSON is malformed or whose fields have
	// the wrong shape. The message names the field.
	ErrInvalidBlob = errors.New("vault: invalid encrypted blob")
	// ErrDecrypt: a blob that does not decrypt. Deliberately says nothing more: a
	// wrong key, a wrong version and a flipped bit all look the same.
	ErrDecrypt = errors.New("vault: decryption failed (wrong key or version, or the blob was altered)")
	// ErrWrongPassphrase: the vault file's passphrase is wrong (or the file is not
	// passphrase-encrypted). Nothing was changed.
	ErrWrongPassphrase = errors.New("vault: wrong passphrase for the vault file")
	// ErrInvalidFile: the vault file is not an age file holding a valid mnemonic.
	ErrInvalidFile = errors.New("vault: invalid vault file")
)

// MnemonicError says why a phrase is not a valid mnemonic. It never quotes the phrase
// or its words, which are secret; it gives positions (1-based) instead.
type MnemonicError struct {
	Reason string
	// Word is the 1-based position of the offending word, 0 if none.
	Word int
}

func (e *MnemonicError) Error() string {
	if e.Word > 0 {
		return fmt.Sprintf("vault: invalid mnemonic: word %d %s", e.Word, e.Reason)
	}
	return "vault: invalid mnemonic: " + e.Reason
}

// Is makes errors.Is(err, ErrInvalidMnemonic) true.
func (e *MnemonicError) Is(target error) bool { return target == ErrInvalidMnemonic }

// PathError says why a derivation path is invalid.
type PathError struct {
	Path   string // the path as given (truncated if very long)
	Reason string
	Err    error // ErrNotHardened, or nil
}

func (e *PathError) Error() string {
	return fmt.Sprintf("vault: invalid derivation path %q: %s", e.Path, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidPath) true.
func (e *PathError) Is(target error) bool { return target == ErrInvalidPath }

// Unwrap returns the specific cause, if any.
func (e *PathError) Unwrap() error { return e.Err }
