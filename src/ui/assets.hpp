// The console page's files, compiled into the binary (cmake/EmbedAssets.cmake).
#pragma once

#include <string>
#include <vector>

namespace funcie::ui {

struct asset {
  std::string name;  ///< "index.html", "app.js"
  std::string content_type;
  std::string bytes;
};

const std::vector<asset>& assets();

}  // namespace funcie::ui
