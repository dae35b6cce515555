//! The interlock binary: serve the mesh, run the demo, operate it.
