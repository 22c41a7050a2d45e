package schema

import "errors"

// CheckBackward reports whether reader (a type's new schema) can read every datum written
// with writer (an older schema of the type), by the Avro specification's resolution rules:
// fields are matched by name or by the reader field's aliases; a reader field the writer
// lacks needs a default; a writer field the reader lacks is skipped; types must be equal
// or promotable (int to long, float or double; long to float or double; float to double;
// string to and from bytes); named types must keep their unqualified name or list the old
// full name as an alias; fixed sizes must agree; every writer enum symbol must exist in the
// reader or the reader enum must have a default; every branch of a writer union must be
// readable by the reader. A decimal's scale must not change: Avro would read the stored
// unscaled values at the new scale, multiplying every amount by a power of ten.
//
// The error is an *IncompatibleError listing every problem by field path, such as
// `field "amount": type changed from long to int (not a promotion)`.
func CheckBackward(writer, reader *Schema) error {
	r := newResolver(writer.root, reader.root, false)
	if len(r.problems) == 0 {
		return nil
	}
	return &IncompatibleError{Writer: writer, Reader: reader, Problems: r.problems}
}

// CheckHistory checks that next can read the data of every schema in history (a type's
// earlier schemas, oldest first), not only the previous one: that catches a field removed
// and re-added with another type, which a check of neighbours misses. Schemas with next's
// fingerprint are skipped. The error joins one *IncompatibleError per schema next cannot
// read. See decision 33.
func CheckHistory(history []*Schema, next *Schema) error {
	var errs []error
	for _, old := range history {
		if old.Fingerprint() == next.Fingerprint() {
			continue
		}
		if err := CheckBackward(old, next); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
