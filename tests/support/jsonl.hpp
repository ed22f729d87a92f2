// A tiny JSON reader for vectors.jsonl (objects, arrays, strings, integers, true, false, null).
// Every escape, \uXXXX and surrogate pairs included; throws std::runtime_error on anything else.
#ifndef IPC_HPP_TESTS_SUPPORT_JSONL_HPP
#define IPC_HPP_TESTS_SUPPORT_JSONL_HPP

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ipc_test {

struct Json {
    enum class Kind { null, boolean, integer, string, array, object };

    Kind kind = Kind::null;
    bool boolean = false;
    long long integer = 0;
    std::string string;
    std::vector<Json> items;        // array elements, or object values
    std::vector<std::string> keys;  // object keys, beside their values

    bool is_null() const { return kind == Kind::null; }

    // The member `key` of an object; throws when there is none.
    const Json& operator[](std::string_view key) const {
        for (std::size_t i = 0; i < keys.size(); ++i) {
            if (keys[i] == key) return items[i];
        }
        throw std::runtime_error("json: no member \"" + std::string(key) + "\"");
    }
    const std::string& str() const {
        if (kind != Kind::string) throw std::runtime_error("json: not a string");
        return string;
    }
    long long to_int() const {
        if (kind != Kind::integer) throw std::runtime_error("json: not an integer");
        return integer;
    }
    bool to_bool() const {
        if (kind != Kind::boolean) throw std::runtime_error("json: not a boolean");
        return boolean;
    }
};

class JsonParser {
public:
    static Json parse(std::string_view text) {
        JsonParser p{text};
        Json value = p.value();
        p.skip_space();
        if (p.at_ != text.size()) p.fail("trailing characters");
        return value;
    }

private:
    explicit JsonParser(std::string_view text) : text_(text) {}

    [[noreturn]] void fail(const char* what) const {
        throw std::runtime_error("json: " + std::string(what) + " at offset " + std::to_string(at_));
    }
    void skip_space() {
        while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\r' || text_[at_] == '\n')) {
            ++at_;
        }
    }
    char peek() {
        skip_space();
        if (at_ >= text_.size()) fail("unexpected end");
        return text_[at_];
    }
    void expect(char c) {
        if (peek() != c) fail("unexpected character");
        ++at_;
    }
    bool literal(std::string_view word) {
        if (text_.substr(at_, word.size()) != word) return false;
        at_ += word.size();
        return true;
    }

    Json value() {
        Json v;
        const char c = peek();
        if (c == '{') {
            v.kind = Json::Kind::object;
            ++at_;
            while (peek() != '}') {
                if (!v.keys.empty()) expect(',');
                if (peek() != '"') fail("expected a key");
                v.keys.push_back(string());
                expect(':');
                v.items.push_back(value());
            }
            ++at_;
        } else if (c == '[') {
            v.kind = Json::Kind::array;
            ++at_;
            while (peek() != ']') {
                if (!v.items.empty()) expect(',');
                v.items.push_back(value());
            }
            ++at_;
        } else if (c == '"') {
            v.kind = Json::Kind::string;
            v.string = string();
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            v.kind = Json::Kind::integer;
            const std::size_t start = at_++;
            while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') ++at_;
            v.integer = std::stoll(std::string(text_.substr(start, at_ - start)));
        } else if (literal("true")) {
            v.kind = Json::Kind::boolean;
            v.boolean = true;
        } else if (literal("false")) {
            v.kind = Json::Kind::boolean;
        } else if (!literal("null")) {
            fail("unexpected character");
        }
        return v;
    }

    std::uint32_t hex4() {
        if (at_ + 4 > text_.size()) fail("short \\u escape");
        std::uint32_t code = 0;
        for (int i = 0; i < 4; ++i) {
            const char h = text_[at_++];
            code <<= 4;
            if (h >= '0' && h <= '9') code |= static_cast<std::uint32_t>(h - '0');
            else if (h >= 'a' && h <= 'f') code |= static_cast<std::uint32_t>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') code |= static_cast<std::uint32_t>(h - 'A' + 10);
            else fail("bad \\u escape");
        }
        return code;
    }

    static void append_utf8(std::string& out, std::uint32_t code) {
        auto byte = [&](std::uint32_t b) { out += static_cast<char>(b); };
        if (code < 0x80) {
            byte(code);
        } else if (code < 0x800) {
            byte(0xC0 | (code >> 6));
            byte(0x80 | (code & 0x3F));
        } else if (code < 0x10000) {
            byte(0xE0 | (code >> 12));
            byte(0x80 | ((code >> 6) & 0x3F));
            byte(0x80 | (code & 0x3F));
        } else {
            byte(0xF0 | (code >> 18));
            byte(0x80 | ((code >> 12) & 0x3F));
            byte(0x80 | ((code >> 6) & 0x3F));
            byte(0x80 | (code & 0x3F));
        }
    }

    // A string, its opening quote at at_.
    std::string string() {
        expect('"');
        std::string out;
        for (;;) {
            if (at_ >= text_.size()) fail("unterminated string");
            const char c = text_[at_++];
            if (c == '"') return out;
            if (c != '\\') {
                out += c;
                continue;
            }
            if (at_ >= text_.size()) fail("unterminated escape");
            switch (text_[at_++]) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    std::uint32_t code = hex4();
                    if (code >= 0xD800 && code < 0xDC00) {  // a high surrogate: its pair must follow
                        if (!literal("\\u")) fail("lone high surrogate");
                        const std::uint32_t low = hex4();
                        if (low < 0xDC00 || low >= 0xE000) fail("bad low surrogate");
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    }
                    append_utf8(out, code);
                    break;
                }
                default: fail("unknown escape");
            }
        }
    }

    std::string_view text_;
    std::size_t at_ = 0;
};

// Every non-empty line of a JSON-lines file, parsed.
inline std::vector<Json> read_jsonl(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::vector<Json> lines;
    std::string line;
    while (std::getline(in, line)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        lines.push_back(JsonParser::parse(line));
    }
    return lines;
}

}  // namespace ipc_test

#endif
