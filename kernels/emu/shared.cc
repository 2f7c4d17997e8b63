// SPDX-License-Identifier: MIT
/*
 * Where a kernel's static __shared__ arrays are: `__shared__` is `static`
 * here, so they are the function-local statics of the kernel, named
 * _ZZ<kernel>E<name> in the symbol table of the object holding it (the
 * plugin, or a test program).  Found once per kernel, they let the
 * scheduler fill a block's shared memory with the NaN pattern before it
 * runs (a read before any write shows up) and the launch check the 48 KiB
 * that nvcc allows.
 */
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "emu.h"

namespace ec_emu
{
namespace
{
std::map<const void *, std::vector<shared_var>> g_vars;

/* The file of `func`, mapped read-only, or NULL. */
const uint8_t *map_file(const char *path, size_t *size)
{
	struct stat st;
	void *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
		close(fd);
		return NULL;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return NULL;
	*size = (size_t)st.st_size;
	return (const uint8_t *)p;
}

/* The statics of the function at `func`, from its object's .symtab. */
std::vector<shared_var> lookup(const void *func)
{
	std::vector<shared_var> out;
	const Elf64_Shdr *sh;
	const Elf64_Ehdr *eh;
	const uint8_t *f;
	std::string prefix;
	size_t size = 0;
	Dl_info info;

	if (!dladdr(func, &info) || !info.dli_fname)
		return out;
	f = map_file(info.dli_fname, &size);
	if (!f)
		return out;
	eh = (const Elf64_Ehdr *)f;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > size)
		goto out;
	sh = (const Elf64_Shdr *)(f + eh->e_shoff);
	for (int pass = 0; pass < 2; pass++)
		for (unsigned int i = 0; i < eh->e_shnum; i++) {
			const Elf64_Sym *sym;
			const char *str;
			uint64_t n;

			if (sh[i].sh_type != SHT_SYMTAB ||
			    sh[i].sh_link >= eh->e_shnum ||
			    sh[i].sh_offset + sh[i].sh_size > size ||
			    sh[sh[i].sh_link].sh_offset +
					    sh[sh[i].sh_link].sh_size >
				    size)
				continue;
			sym = (const Elf64_Sym *)(f + sh[i].sh_offset);
			str = (const char *)(f + sh[sh[i].sh_link].sh_offset);
			n = sh[i].sh_size / sizeof(Elf64_Sym);
			for (uint64_t j = 0; j < n; j++) {
				const char *name = str + sym[j].st_name;
				uintptr_t addr = (uintptr_t)info.dli_fbase +
						 sym[j].st_value;
				int type = ELF64_ST_TYPE(sym[j].st_info);

				if (sym[j].st_name >=
				    sh[sh[i].sh_link].sh_size)
					continue;
				/* pass 0: the kernel's name; 1: its statics */
				if (pass == 0 && type == STT_FUNC &&
				    addr == (uintptr_t)func &&
				    !strncmp(name, "_Z", 2))
					prefix = std::string("_ZZ") +
						 (name + 2) + "E";
				else if (pass == 1 && type == STT_OBJECT &&
					 !prefix.empty() &&
					 !strncmp(name, prefix.c_str(),
						  prefix.size()) &&
					 sym[j].st_shndx < eh->e_shnum &&
					 (sh[sym[j].st_shndx].sh_flags &
					  SHF_WRITE))
					out.push_back(shared_var{
						(void *)addr,
						(size_t)sym[j].st_size });
			}
		}
out:
	munmap((void *)f, size);
	return out;
}
} /* namespace */

const std::vector<shared_var> &shared_vars(const void *func)
{
	auto it = g_vars.find(func);

	if (it == g_vars.end())
		it = g_vars.emplace(func, lookup(func)).first;
	return it->second;
}
} /* namespace ec_emu */
