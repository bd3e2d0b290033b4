// The precompiled header every funcie library reuses (src/CMakeLists.txt); nothing else.
