[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("Consort.Tests")]

namespace Consort.Formats;
