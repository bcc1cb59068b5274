# Writes a C file holding one file's bytes: const char NAME[] (NUL-terminated) and
# const unsigned long NAME_len. Called with -DIN=<file> -DOUT=<file.c> -DNAME=<symbol>.
file(READ ${IN} text HEX)
string(LENGTH "${text}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," text "${text}")
file(WRITE ${OUT} "/* generated from ${IN} by scheduler/embed_file.cmake: do not edit */\n"
                  "const char ${NAME}[] = {${text} 0x00};\n"
                  "const unsigned long ${NAME}_len = ${len};\n")
