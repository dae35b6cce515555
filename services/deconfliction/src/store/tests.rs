// store tests come next
